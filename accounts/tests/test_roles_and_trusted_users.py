"""Roles over every customer URL in the project, and the trusted-user lifecycle."""
import re
import uuid

import pytest
from django.core import mail, signing
from django.test import Client
from django.urls import URLPattern, URLResolver, converters, get_resolver, reverse

from accounts.models import ActivityEvent, User
from accounts.roles import ROLE_AREAS
from accounts.tests.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

SAMPLE_ARGS = {
    converters.IntConverter: 987654321,
    converters.StringConverter: "x",
    converters.SlugConverter: "x",
    converters.PathConverter: "x",
    converters.UUIDConverter: uuid.UUID(int=0),
}


def customer_urls() -> list[tuple[str, str, str]]:
    """(url name, path, area) for every view wrapped in customer_view, including later apps' views."""
    found = []

    def walk(patterns, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace]))
                walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "customer_area"):
                name = ":".join(filter(None, [namespace, pattern.name]))
                kwargs = {key: SAMPLE_ARGS[type(conv)] for key, conv in pattern.pattern.converters.items()}
                found.append((name, reverse(name, kwargs=kwargs), pattern.callback.customer_area))

    walk(get_resolver().url_patterns, "")
    return found


def test_the_matrix_covers_the_settings_pages():
    names = {name for name, _path, _area in customer_urls()}
    assert {"accounts:settings_profile", "accounts:settings_preferences", "accounts:trusted_users",
            "accounts:settings_security", "accounts:activity", "accounts:password_change"} <= names


@pytest.mark.parametrize("role", [User.Role.OWNER, User.Role.FINANCE, User.Role.TECHNICAL])
def test_role_matrix_over_every_customer_url(client, role):
    owner = UserFactory()
    user = owner if role == User.Role.OWNER else UserFactory(customer=owner.customer, role=role)
    client.force_login(user)
    allowed_areas = ROLE_AREAS[role]
    for name, path, area in customer_urls():
        response = client.get(path)
        if area in allowed_areas:
            assert response.status_code in (200, 302, 404, 405), (name, role, response.status_code)
        else:
            assert response.status_code in (403, 405), (name, role, response.status_code)
            if response.status_code == 405:  # POST-only: the role check must still refuse it
                assert client.post(path).status_code == 403, (name, role)


def test_anonymous_and_staff_are_kept_out_of_customer_urls(client):
    for name, path, _area in customer_urls():
        response = client.get(path)
        assert response.status_code in (302, 405), name
        if response.status_code == 302:
            assert response.url.startswith("/accounts/login/"), name
    client.force_login(StaffUserFactory())
    for name, path, _area in customer_urls():
        assert client.get(path).status_code in (403, 405), name


def test_trusted_user_can_change_own_password_and_2fa_but_not_account_settings(client):
    owner = UserFactory()
    finance = UserFactory(customer=owner.customer, role="finance")
    client.force_login(finance)
    assert client.get("/accounts/settings/security/").status_code == 200
    assert client.get("/accounts/password/change/").status_code == 200
    assert client.post("/accounts/settings/security/2fa/start/").status_code == 302
    page = client.get("/accounts/settings/security/").content.decode()
    assert 'data-testid="otp-qr"' in page
    assert 'data-testid="section-ip"' not in page and 'data-testid="section-code-word"' not in page
    assert client.post("/accounts/settings/security/ip-restriction/", {"ip_allowlist": "10.0.0.1"}).status_code == 403
    sections = [s["key"] for s in client.get("/accounts/settings/profile/").context["sections"]]
    assert sections == ["profile", "security", "password", "activity", "privacy", "passkeys", "api_keys"]  # not webhooks


def _invite(client, **overrides):
    data = {"username": "fin.anna", "email": "anna@corp.example", "first_name": "Anna", "last_name": "Fin",
            "role": "finance", **overrides}
    return client.post("/accounts/settings/users/", data)


def test_owner_invites_person_who_sets_password_and_logs_in_with_their_role(client, django_capture_on_commit_callbacks):
    owner = UserFactory()
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = _invite(client)
    assert response.status_code == 302
    invited = User.objects.get(username="fin.anna")
    assert (invited.customer_id, invited.role, invited.has_usable_password()) == (owner.customer_id, "finance", False)
    assert mail.outbox[-1].to == ["anna@corp.example"] and "fin.anna" in mail.outbox[-1].body
    event = ActivityEvent.objects.get(action="trusted_user_added")
    assert event.actor == owner and event.customer == owner.customer

    link = re.search(r"/accounts/invitation/\S+/", mail.outbox[-1].body).group(0)
    guest = Client()
    assert guest.get(link).status_code == 200
    response = guest.post(link, {"new_password1": "Anna-Secret-2026", "new_password2": "Anna-Secret-2026"})
    assert response.status_code == 302
    assert guest.get(link).status_code == 400  # single use
    response = guest.post("/accounts/login/", {"username": "fin.anna", "password": "Anna-Secret-2026"})
    assert response.status_code == 302
    assert guest.get("/accounts/settings/activity/").status_code == 200
    assert guest.get("/accounts/settings/users/").status_code == 403

    # The list shows them; bad input is refused.
    page = client.get("/accounts/settings/users/").content.decode()
    assert "fin.anna" in page
    response = _invite(client, username="fin.anna", email="bad")
    assert {"username", "email"} <= set(response.context["form"].errors)


def test_invitation_link_tampered_or_expired(client, settings):
    owner = UserFactory()
    client.force_login(owner)
    _invite(client)
    invited = User.objects.get(username="fin.anna")
    from accounts.tokens import make_invitation_token

    token = make_invitation_token(invited)
    assert Client().get(f"/accounts/invitation/{token[:-3]}abc/").status_code == 400
    settings.INVITATION_MAX_AGE = -1
    response = Client().post(f"/accounts/invitation/{token}/", {"new_password1": "Anna-Secret-2026",
                                                                  "new_password2": "Anna-Secret-2026"})
    assert response.status_code == 400 and b"expired" in response.content
    invited.refresh_from_db()
    assert not invited.has_usable_password()


def test_owner_changes_role_and_revokes_access_sessions_end(client):
    owner = UserFactory()
    tech = UserFactory(customer=owner.customer, role="technical", username="tech1")
    tech_client = Client()
    tech_client.force_login(tech)
    client.force_login(owner)

    client.post(f"/accounts/settings/users/{tech.pk}/role/", {"role": "finance"})
    tech.refresh_from_db()
    assert tech.role == "finance"
    assert ActivityEvent.objects.get(action="trusted_user_role_changed").details == {
        "username": "tech1", "old": "technical", "new": "finance"}

    client.post(f"/accounts/settings/users/{tech.pk}/revoke/")
    tech.refresh_from_db()
    assert not tech.is_active
    assert tech_client.get("/accounts/settings/profile/").status_code == 302  # session no longer works
    response = Client().post("/accounts/login/", {"username": "tech1", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    assert ActivityEvent.objects.get(action="trusted_user_revoked").actor == owner


def test_owner_cannot_demote_or_revoke_self_and_last_owner_stays(client):
    owner = UserFactory()
    client.force_login(owner)
    client.post(f"/accounts/settings/users/{owner.pk}/role/", {"role": "finance"})
    client.post(f"/accounts/settings/users/{owner.pk}/revoke/")
    owner.refresh_from_db()
    assert owner.role == "owner" and owner.is_active
    second = UserFactory(customer=owner.customer, role="owner")
    second_client = Client()
    second_client.force_login(second)
    second_client.post(f"/accounts/settings/users/{owner.pk}/revoke/")
    owner.refresh_from_db()
    assert not owner.is_active  # another owner may revoke them
    from accounts.services.trusted_users import trusted_user_revoke
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        trusted_user_revoke(customer=second.customer, actor=owner, user_id=second.pk)


def test_another_customers_users_are_404_and_untouched(client):
    owner = UserFactory()
    stranger = UserFactory(customer=UserFactory().customer, role="technical")
    client.force_login(owner)
    for action in ("role", "revoke", "resend"):
        assert client.post(f"/accounts/settings/users/{stranger.pk}/{action}/", {"role": "owner"}).status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active and stranger.role == "technical"


def test_invitation_token_is_bound_to_the_purpose():
    owner = UserFactory()
    from accounts.tokens import make_email_token, read_invitation_token

    with pytest.raises(signing.BadSignature):
        read_invitation_token(make_email_token(user_id=owner.pk, email=owner.email))


@pytest.mark.django_db
def test_resend_verification_redirects_only_within_the_site(client, settings):
    from accounts.tests.factories import UserFactory

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "verification_resend": {}}  # four posts in a row: only redirects are under test

    client.force_login(UserFactory(email_verified=False))
    for target, expected in (("https://evil.example/x", "/"), ("//evil.example/x", "/"), ("/billing/", "/billing/"),
                             ("NaN", "/")):
        response = client.post(reverse("accounts:resend_verification"), {"next": target})
        assert response.status_code == 302 and response.url == expected, target


@pytest.mark.django_db
@pytest.mark.parametrize("role", [User.Role.FINANCE, User.Role.TECHNICAL])
def test_only_the_owner_changes_the_account_language(client, role):
    from accounts.tests.factories import UserFactory

    owner = UserFactory()
    trusted = UserFactory(customer=owner.customer, role=role)
    client.force_login(trusted)
    assert 'data-testid="language-switcher"' not in client.get(reverse("dashboard")).content.decode()
    client.post(reverse("accounts:set_language"), {"language": "ru", "next": "/"})
    owner.customer.refresh_from_db()
    assert owner.customer.language == "en"
    client.force_login(owner)
    client.post(reverse("accounts:set_language"), {"language": "ru", "next": "/"})
    owner.customer.refresh_from_db()
    assert owner.customer.language == "ru"
