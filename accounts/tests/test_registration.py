import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from accounts.models import Customer, User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from accounts.tokens import make_email_token

pytestmark = pytest.mark.django_db

VALID = {
    "username": "newclient", "email": "new@example.com", "first_name": "Ann", "last_name": "Lee",
    "password1": "Sturdy-Passphrase-9", "password2": "Sturdy-Passphrase-9",
}


def _link_from_mail() -> str:
    return re.search(r"http://\S+/accounts/verify/\S+/", mail.outbox[-1].body).group(0)


def test_register_creates_customer_owner_and_sends_link(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/register/", VALID)
    assert response.status_code == 200
    user = User.objects.get(username="newclient")
    assert user.role == User.Role.OWNER and not user.email_verified
    assert user.customer.client_id > 100000
    assert mail.outbox[-1].to == ["new@example.com"]
    assert mail.outbox[-1].alternatives  # HTML part too


@pytest.mark.parametrize("change, field", [
    ({"username": "TAKEN"}, "username"),
    ({"email": "Taken@Example.com"}, "email"),
    ({"password1": "short", "password2": "short"}, "password1"),
    ({"password2": "Different-Passphrase-9"}, "password2"),
    ({"username": "bad name!"}, "username"),
    ({"email": "not-an-email"}, "email"),
    ({"password1": "1234567890123", "password2": "1234567890123"}, "password1"),
])
def test_register_bad_input_saves_nothing(client, change, field):
    UserFactory(username="taken", email="taken@example.com")
    before = (User.objects.count(), Customer.objects.count())
    response = client.post("/accounts/register/", {**VALID, **change})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert (User.objects.count(), Customer.objects.count()) == before
    assert mail.outbox == []


def test_verification_link_get_changes_nothing_post_verifies(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/register/", VALID)
    link = _link_from_mail().replace("http://127.0.0.1:8000", "")
    assert client.get(link).status_code == 200
    assert not User.objects.get(username="newclient").email_verified
    response = client.post(link)
    assert response.status_code == 302
    assert User.objects.get(username="newclient").email_verified


def test_tampered_and_expired_links_are_refused(client, settings):
    user = UserFactory(email_verified=False)
    token = make_email_token(user_id=user.pk, email=user.email)
    response = client.post(f"/accounts/verify/{token[:-2]}xx/")
    assert response.status_code == 400 and "invalid" in response.content.decode()
    settings.EMAIL_VERIFICATION_MAX_AGE = -1
    response = client.post(f"/accounts/verify/{token}/")
    assert response.status_code == 400 and "expired" in response.content.decode()
    user.refresh_from_db()
    assert not user.email_verified


def test_login_by_username_or_email_case_insensitive(client):
    user = UserFactory(username="Mixed", email="mixed@example.com")
    for login in ("mixed", "MIXED@example.com"):
        client.logout()
        response = client.post("/accounts/login/", {"username": login, "password": DEFAULT_PASSWORD})
        assert response.status_code == 302, login
        assert client.get("/").context["customer"].pk == user.customer_id


def test_wrong_password_shows_form_error(client):
    UserFactory(username="someone")
    response = client.post("/accounts/login/", {"username": "someone", "password": "nope"})
    assert response.status_code == 200
    assert "Wrong username/email or password." in response.content.decode()


def test_logout_requires_post(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_password_reset_by_email(client, django_capture_on_commit_callbacks):
    user = UserFactory(email="reset@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "RESET@example.com"})
    body = mail.outbox[-1].body
    link = re.search(r"http://\S+/accounts/password/reset/\S+/\S+/", body).group(0).split("testserver")[-1]
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "Brand-New-Secret-7", "new_password2": "Brand-New-Secret-7"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Brand-New-Secret-7")


def test_password_change_keeps_this_session_and_ends_others(client):
    from django.test import Client

    user = UserFactory()
    other = Client()
    other.force_login(user)
    client.force_login(user)
    response = client.post("/accounts/password/change/", {
        "old_password": DEFAULT_PASSWORD, "new_password1": "Another-Secret-88", "new_password2": "Another-Secret-88"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302


def test_username_is_immutable_in_the_database():
    user = UserFactory(username="fixed")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(username="changed")


def test_username_and_email_unique_case_insensitive_in_the_database():
    UserFactory(username="alpha", email="a@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="ALPHA", email="other@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="beta", email="A@EXAMPLE.COM")


def test_staff_without_customer_gets_403_on_customer_pages(client):
    from accounts.tests.factories import StaffUserFactory

    client.force_login(StaffUserFactory())
    assert client.get("/").status_code == 403


def test_admin_searches_users_by_client_id(admin_client):
    user = UserFactory(username="findme")
    response = admin_client.get("/admin/accounts/user/", {"q": str(user.customer_id)})
    assert response.status_code == 200
    assert "findme" in response.content.decode()


def test_verification_mail_waits_in_the_outbox_while_the_broker_is_down(client, monkeypatch,
                                                                        django_capture_on_commit_callbacks):
    from io import StringIO

    import time_machine
    from django.core.management import call_command
    from django.utils import timezone

    from notifications.models import EmailOutbox
    from notifications.secret_box import unseal
    from notifications.tasks import email_deliver_task

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(email_deliver_task, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/register/", VALID)
    assert response.status_code == 200 and mail.outbox == []  # registered; the mail is not lost, only late
    row = EmailOutbox.objects.get(recipient="new@example.com")
    user = User.objects.get(username="newclient")
    assert row.status == EmailOutbox.Status.PENDING and row.customer_id == user.customer_id
    assert "/accounts/verify/" not in row.body_text + row.body_html  # sealed: staff never read the link
    token = re.search(r"/accounts/verify/(\S+)/", unseal(row.body_text)).group(1)
    assert row.dedupe_key.startswith("accounts:verify-email:") and token not in row.dedupe_key

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        call_command("send_outbox", stdout=StringIO())  # the cron fallback of the beat sweeper
    assert mail.outbox[-1].to == ["new@example.com"] and token in _link_from_mail()
    row.refresh_from_db()
    assert row.status == EmailOutbox.Status.SENT and row.contains_secret and row.body_text == ""  # link forgotten


def test_password_reset_mail_goes_through_the_outbox_once_per_link(client, django_capture_on_commit_callbacks):
    from notifications.models import EmailOutbox

    user = UserFactory(email="reset@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "reset@example.com"})
    row = EmailOutbox.objects.get(recipient="reset@example.com")
    assert row.customer_id == user.customer_id and row.dedupe_key.startswith("accounts:password-reset:")
    assert row.status == EmailOutbox.Status.SENT and row.contains_secret
    assert [m.to for m in mail.outbox] == [["reset@example.com"]]
    assert "/accounts/password/reset/" in mail.outbox[0].body


def test_password_reset_link_uses_the_portal_base_url_not_the_request_host(client, settings,
                                                                         django_capture_on_commit_callbacks):
    settings.ALLOWED_HOSTS = ["testserver", "evil.example"]
    settings.PORTAL_BASE_URL = "https://my.portal.example"
    UserFactory(email="host@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "host@example.com"}, HTTP_HOST="evil.example")
    body = mail.outbox[-1].body + mail.outbox[-1].alternatives[0][0]
    assert "evil.example" not in body and "https://my.portal.example/accounts/password/reset/" in body


def test_staff_cannot_use_the_public_password_reset(client, django_capture_on_commit_callbacks):
    from accounts.tests.factories import StaffUserFactory
    from notifications.models import EmailOutbox

    StaffUserFactory(email="staff@provider.example")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password/reset/", {"email": "staff@provider.example"})
    assert response.status_code == 302  # the same answer as for an unknown address
    assert not EmailOutbox.objects.filter(recipient="staff@provider.example").exists() and mail.outbox == []


def _published(kind: str, title: str):
    from django.utils import timezone

    from accounts.models import PolicyVersion
    from accounts.services.policies import policy_version_create

    policy = policy_version_create(kind=kind, title=title, text="Text.")
    PolicyVersion.objects.filter(pk=policy.pk).update(published_at=timezone.now())
    return policy


def test_signup_accepts_the_current_policies_so_the_new_user_sees_no_update_banner(client):
    from accounts.models import PolicyAcceptance

    privacy, terms = _published("privacy", "Privacy policy"), _published("terms", "Terms of service")
    page = client.get("/accounts/register/").content.decode()
    assert 'href="/accounts/policies/privacy/"' in page and 'href="/accounts/policies/terms/"' in page
    ids = f"{privacy.pk},{terms.pk}"
    assert f'name="policy_ids" value="{ids}"' in page

    response = client.post("/accounts/register/", {**VALID, "policy_ids": ids})  # box not ticked
    assert "accept_policies" in response.context["form"].errors and not User.objects.exists()

    client.post("/accounts/register/", {**VALID, "policy_ids": ids, "accept_policies": "on"})
    user = User.objects.get(username="newclient")
    assert set(PolicyAcceptance.objects.filter(user=user).values_list("policy_id", flat=True)) == {privacy.pk, terms.pk}
    User.objects.filter(pk=user.pk).update(email_verified=True)
    client.force_login(user)
    assert 'data-testid="policy-banner"' not in client.get("/").content.decode()


def test_signup_with_a_version_published_meanwhile_asks_to_accept_the_new_one(client):
    old = _published("privacy", "Privacy policy")
    newer = _published("privacy", "Privacy policy")
    response = client.post("/accounts/register/", {**VALID, "policy_ids": str(old.pk), "accept_policies": "on"})
    assert not User.objects.exists()
    assert response.context["form"].errors["policy_ids"]
    assert f'name="policy_ids" value="{newer.pk}"' in response.content.decode()


def test_policy_page_shows_the_russian_text_staff_wrote(client):
    from accounts.models import PolicyVersion

    policy = _published("privacy", "Privacy policy")
    PolicyVersion.objects.filter(pk=policy.pk).update(title_ru="Политика конфиденциальности", text_ru="Текст.")
    assert "Privacy policy" in client.get("/accounts/policies/privacy/").content.decode()
    client.cookies["django_language"] = "ru"
    page = client.get("/accounts/policies/privacy/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Политика конфиденциальности" in page and "Текст." in page
