"""Login security: two-factor step, recovery codes, lockout, alerts, sessions, activity log."""
import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ActivityEvent, Customer
from accounts.selectors import otp_enabled
from accounts.services.activity import activity_record
from accounts.services.security import customer_set_code_word
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.tests.concurrency import run_concurrently
from core.compiled import prepared_sql

pytestmark = pytest.mark.django_db


def current_code(device: TOTPDevice, drift: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift):06d}"


def enable_2fa(client, user) -> tuple[TOTPDevice, list[str]]:
    client.post("/accounts/settings/security/2fa/start/")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post("/accounts/settings/security/2fa/confirm/", {"token": current_code(device)}, follow=True)
    codes = response.context["recovery_codes"]
    device.refresh_from_db()
    return device, codes


def password_login(client, username, password=DEFAULT_PASSWORD, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_enable_2fa_shows_qr_and_ten_recovery_codes_once(client):
    user = UserFactory()
    client.force_login(user)
    client.post("/accounts/settings/security/2fa/start/")
    page = client.get("/accounts/settings/security/").content.decode()
    assert "<svg" in page and 'data-testid="otp-secret"' in page
    device = TOTPDevice.objects.get(user=user)
    response = client.post("/accounts/settings/security/2fa/confirm/", {"token": "000000" if current_code(device) != "000000" else "111111"})
    assert "token" in response.context["otp_confirm_form"].errors
    response = client.post("/accounts/settings/security/2fa/confirm/", {"token": current_code(device)}, follow=True)
    codes = response.context["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/accounts/settings/security/").context["recovery_codes"] is None  # shown only once
    assert otp_enabled(user)
    assert ActivityEvent.objects.filter(actor=user, action="2fa_enabled").exists()


def test_login_requires_second_step_and_recovery_code_works_once(client, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp slows down guesses; this test makes wrong tries on purpose
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    user = UserFactory(username="twofa")
    client.force_login(user)
    device, codes = enable_2fa(client, user)
    client.logout()

    response = password_login(client, "twofa")
    assert response.status_code == 302 and response.url == "/accounts/login/verify/"
    assert "_auth_user_id" not in client.session  # no session before the second factor
    assert client.get("/").status_code == 302
    assert client.post("/accounts/login/verify/", {"token": "nonsense"}).status_code == 200
    assert "_auth_user_id" not in client.session
    # The code used to enable 2FA cannot be replayed; the next time step's code (within tolerance) works.
    assert client.post("/accounts/login/verify/", {"token": current_code(device)}).status_code == 200
    response = client.post("/accounts/login/verify/", {"token": current_code(device, drift=1)})
    assert response.status_code == 302
    assert client.get("/").status_code == 200

    # A recovery code logs in once.
    for attempt in range(2):
        other = Client()
        password_login(other, "twofa")
        response = other.post("/accounts/login/verify/", {"token": codes[0]})
        if attempt == 0:
            assert response.status_code == 302 and other.get("/").status_code == 200
        else:
            assert response.status_code == 200 and "_auth_user_id" not in other.session


def test_recovery_codes_are_stored_hashed_and_work_typed_without_the_dash(client, settings):
    from django_otp.plugins.otp_static.models import StaticToken

    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    user = UserFactory(username="hashed")
    client.force_login(user)
    _device, codes = enable_2fa(client, user)
    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & set(codes) and not stored & {c.replace("-", "") for c in codes}
    client.logout()
    password_login(client, "hashed")
    response = client.post("/accounts/login/verify/", {"token": codes[1].replace("-", " ").upper()})
    assert response.status_code == 302 and client.get("/").status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == 9


def test_staff_see_only_whether_2fa_is_on_and_reset_it_with_permission_and_audit(client,
                                                                                django_capture_on_commit_callbacks):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from accounts.tests.factories import StaffUserFactory

    user = UserFactory(username="lostphone")
    client.force_login(user)
    device, codes = enable_2fa(client, user)
    viewer = StaffUserFactory(is_superuser=False)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    for url in ("/admin/otp_totp/totpdevice/", "/admin/otp_static/staticdevice/", "/admin/otp_static/statictoken/"):
        assert client.get(url).status_code == 404
    page = client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert device.key not in page and codes[0] not in page and "2FA" in page
    changelist = reverse("admin:accounts_user_changelist")
    client.post(changelist, {"action": "reset_two_factor", "_selected_action": [user.pk], "index": "0"})
    assert otp_enabled(user)

    resetter = StaffUserFactory(is_superuser=False)
    resetter.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "reset_two_factor"]))
    client.force_login(resetter)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "reset_two_factor", "_selected_action": [user.pk], "index": "0"})
    assert not otp_enabled(user)
    event = ActivityEvent.objects.get(action="2fa_reset_by_staff")
    assert event.actor == resetter and event.customer_id == user.customer_id
    assert "turned off by support" in mail.outbox[-1].body


def test_disable_2fa_needs_password_and_code(client):
    user = UserFactory()
    client.force_login(user)
    device, codes = enable_2fa(client, user)
    response = client.post("/accounts/settings/security/2fa/disable/", {"password": "wrong", "token": "123"})
    assert {"password", "token"} <= set(response.context["otp_disable_form"].errors)
    assert otp_enabled(user)
    client.post("/accounts/settings/security/2fa/disable/", {"password": DEFAULT_PASSWORD, "token": codes[3]})
    assert not otp_enabled(user)
    assert ActivityEvent.objects.filter(actor=user, action="2fa_disabled").exists()


def test_wrong_second_factor_codes_restart_login(client, settings):
    settings.OTP_LOGIN_MAX_ATTEMPTS = 2
    settings.AXES_FAILURE_LIMIT = 50
    user = UserFactory(username="guessme")
    client.force_login(user)
    enable_2fa(client, user)
    client.logout()
    password_login(client, "guessme")
    client.post("/accounts/login/verify/", {"token": "000001"})
    response = client.post("/accounts/login/verify/", {"token": "000002"})
    assert response.status_code == 302 and response.url == "/accounts/login/"
    assert client.get("/accounts/login/verify/").status_code == 302
    assert ActivityEvent.objects.filter(actor=user, action="login_failed", details__reason="2fa_code").count() == 2


def test_lockout_after_repeated_failed_logins_with_clear_message(client, settings):
    user = UserFactory(username="victim")
    for _i in range(settings.AXES_FAILURE_LIMIT - 1):
        response = password_login(client, "victim", "wrong-password")
        assert response.status_code == 200
    response = password_login(client, "victim", "wrong-password")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    # Even the right password is refused while locked.
    response = password_login(client, "victim")
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert ActivityEvent.objects.filter(actor=user, action="login_failed").count() >= settings.AXES_FAILURE_LIMIT - 1


@pytest.mark.parametrize("spelling", ["Victim2", "VICTIM2", "victim2 ", "  victim2", "victim2@example.com",
                                      "VICTIM2@Example.com "])
def test_other_spellings_of_a_locked_login_get_no_extra_guesses(client, settings, spelling):
    UserFactory(username="victim2", email="victim2@example.com")
    for _i in range(settings.AXES_FAILURE_LIMIT):
        password_login(client, "victim2", "wrong-password")
    response = password_login(client, spelling)  # even the right password
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_spelling_variants_share_one_counter_before_the_lockout(client, settings):
    UserFactory(username="victim3", email="victim3@example.com")
    spellings = ["victim3", "VICTIM3", "victim3 ", "victim3@example.com", "Victim3"]
    responses = [password_login(client, typed, "wrong-password") for typed in spellings[:settings.AXES_FAILURE_LIMIT]]
    assert responses[-1].status_code == 429


def test_password_spraying_from_one_ip_is_locked_out(client, settings):
    settings.LOGIN_IP_FAILURE_LIMIT = 6
    sprayed = [UserFactory(username=f"spray{i}") for i in range(7)]
    for user in sprayed[:6]:  # one guess each: no login reaches its own limit
        assert password_login(client, user.username, "Summer2026!", REMOTE_ADDR="203.0.113.7").status_code == 200
    assert password_login(client, sprayed[6].username, REMOTE_ADDR="203.0.113.7").status_code == 429
    other_ip = Client()
    assert password_login(other_ip, sprayed[6].username, REMOTE_ADDR="203.0.113.8").status_code == 302


def test_login_records_activity_and_alert_email_goes_out(client, django_capture_on_commit_callbacks, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    user = UserFactory(username="alerted", email="alerted@example.com")
    Customer.objects.filter(pk=user.customer_id).update(login_alerts=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = password_login(client, "alerted", REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT="TestBrowser/1")
    assert response.status_code == 302
    event = ActivityEvent.objects.get(actor=user, action="login")
    assert event.ip == "198.51.100.23"
    from notifications.models import EmailOutbox
    from notifications.services import email_content

    email = EmailOutbox.objects.get(customer=user.customer, kind="security_login")
    assert email.recipient == "alerted@example.com" and "198.51.100.23" in email_content(email)[1]
    assert any("198.51.100.23" in m.body for m in mail.outbox if m.to == ["alerted@example.com"])


def test_no_alert_when_turned_off(client):
    user = UserFactory(username="quiet")
    password_login(client, "quiet")
    from notifications.models import EmailOutbox

    assert not EmailOutbox.objects.filter(kind="security_login").exists()


def test_previous_login_shown_when_enabled(client):
    user = UserFactory(username="returning")
    Customer.objects.filter(pk=user.customer_id).update(show_last_login=True)
    password_login(client, "returning", REMOTE_ADDR="198.51.100.1")
    client.logout()
    response = password_login(client, "returning", REMOTE_ADDR="198.51.100.2")
    response = client.get(response.url)
    assert any("198.51.100.1" in str(m) for m in response.context["messages"])
    assert "198.51.100.1" in client.get("/accounts/settings/security/").content.decode()


def test_other_sessions_end_after_password_change_and_a_security_mail_is_queued(client):
    user = UserFactory()
    other = Client()
    other.force_login(user)
    client.force_login(user)
    response = client.post("/accounts/password/change/", {
        "old_password": DEFAULT_PASSWORD, "new_password1": "Another-Secret-88", "new_password2": "Another-Secret-88"})
    assert response.status_code == 302
    assert client.get("/accounts/settings/profile/").status_code == 200
    assert other.get("/accounts/settings/profile/").status_code == 302
    from notifications.models import Notification

    assert Notification.objects.filter(customer=user.customer, kind="security_change").exists()


def test_activity_log_scoped_paginated_with_fixed_query_count(client):
    owner = UserFactory()
    technical = UserFactory(customer=owner.customer, role="technical")
    stranger = UserFactory()
    for i in range(3):
        activity_record(action="login", customer=owner.customer, actor=owner, ip=f"192.0.2.{i}")
    activity_record(action="login", customer=owner.customer, actor=technical, ip="192.0.2.200")
    activity_record(action="login", customer=stranger.customer, actor=stranger, ip="192.0.2.99")
    activity_record(action="company_verified", customer=owner.customer, visible_to_customer=False)

    client.force_login(owner)
    body = client.get("/accounts/settings/activity/").content.decode()
    assert "192.0.2.200" in body and "192.0.2.99" not in body and "company_verified" not in body.lower()
    client.force_login(technical)
    body = client.get("/accounts/settings/activity/").content.decode()
    assert "192.0.2.200" in body and "192.0.2.1<" not in body  # trusted users see only their own events

    client.force_login(owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/accounts/settings/activity/").status_code == 200
        return len(ctx.captured_queries)

    small = queries()
    for i in range(60):
        activity_record(action="login_failed", customer=owner.customer, actor=technical, ip="192.0.2.7")
    assert queries() == small
    response = client.get("/accounts/settings/activity/?page=3")
    assert response.context["page"].number == 3


@pytest.mark.django_db(transaction=True)
def test_code_word_cannot_be_set_twice_even_concurrently():
    user = UserFactory()
    results, errors = run_concurrently(
        lambda word: customer_set_code_word(customer=user.customer, actor=user, code_word=word),
        [("first word",), ("second word",)])
    assert len(results) == 1 and [type(error).__name__ for error in errors] == ["ValidationError"]
    assert ActivityEvent.objects.filter(action="code_word_set").count() == 1


def test_a_staff_user_who_may_change_users_cannot_grant_rights_or_move_a_login(rf):
    from django.contrib import admin
    from django.contrib.auth.models import Permission

    from accounts.models import User
    from accounts.tests.factories import StaffUserFactory

    editor = StaffUserFactory(is_superuser=False)
    editor.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "change_user"]))
    editor = User.objects.get(pk=editor.pk)
    user_admin = admin.site._registry[User]
    for target in (editor, UserFactory()):
        request = rf.get("/admin/")
        request.user = editor
        editable = user_admin.get_form(request, target).base_fields
        assert not {"is_superuser", "is_staff", "groups", "user_permissions", "customer"} & set(editable)
    superuser = StaffUserFactory()
    request = rf.get("/admin/")
    request.user = superuser
    assert {"is_superuser", "groups"} <= set(user_admin.get_form(request, editor).base_fields)


def test_staff_enrol_2fa_and_the_admin_login_then_asks_for_the_code(client, settings):
    from accounts.tests.factories import StaffUserFactory

    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    staff = StaffUserFactory(username="backoffice", is_superuser=False)
    client.force_login(staff)
    assert b"Two-factor authentication" in client.get("/admin/").content  # the link in the admin's user links
    client.post("/accounts/staff/two-factor/", {"step": "start"})
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    response = client.post("/accounts/staff/two-factor/", {"step": "confirm", "token": current_code(device)}, follow=True)
    codes = response.context["recovery_codes"]
    assert len(codes) == 10 and otp_enabled(staff)
    assert ActivityEvent.objects.filter(actor=staff, action="2fa_enabled", customer=None).exists()
    client.logout()

    login = {"username": "backoffice", "password": DEFAULT_PASSWORD, "next": "/admin/"}
    response = client.post("/admin/login/", login)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "authenticator app" in response.content.decode()
    device.refresh_from_db()
    assert client.post("/admin/login/", {**login, "otp_token": current_code(device, drift=1)}).status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_customers_cannot_open_the_staff_2fa_page(client):
    client.force_login(UserFactory())
    response = client.get("/accounts/staff/two-factor/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_security_page_second_factor_states_in_one_query(client):
    from base64 import b32encode

    from django_otp.plugins.otp_static.models import StaticDevice

    user = UserFactory()
    client.force_login(user)

    def page():
        return client.get("/accounts/settings/security/").content.decode()

    def otp_queries():
        with CaptureQueriesContext(connection) as captured:
            page()
        return sum('"otp_' in prepared_sql(query["sql"]) for query in captured.captured_queries)

    assert 'data-testid="2fa-on"' not in page() and 'data-testid="otp-secret"' not in page()
    assert otp_queries() == 1  # devices and recovery codes in one query
    client.post("/accounts/settings/security/2fa/start/")
    setup = TOTPDevice.objects.get(user=user, confirmed=False)
    assert f">{b32encode(setup.bin_key).decode()}<" in page()
    assert otp_queries() == 2  # and the device being set up
    device, codes = enable_2fa(client, user)
    assert 'data-testid="2fa-on"' in page() and "10 recovery codes left." in page()
    StaticDevice.objects.filter(user=user).update(confirmed=False)
    assert 'data-testid="2fa-on"' in page()  # the confirmed TOTP device alone
    TOTPDevice.objects.filter(user=user).update(confirmed=False)
    assert 'data-testid="2fa-on"' not in page()
    StaticDevice.objects.filter(user=user).update(confirmed=True)
    assert 'data-testid="2fa-on"' in page() and otp_enabled(user)  # recovery codes alone count, as otp_enabled()
