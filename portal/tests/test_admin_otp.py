"""Staff reach /admin/ only with a second factor (TOTP) when ADMIN_REQUIRE_OTP is on (production default)."""
import pytest
from django.core.management import call_command
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests.factories import DEFAULT_PASSWORD, StaffUserFactory
from portal.admin_otp import check_admin_second_factor
from portal.demo import DEMO_ADMIN_TOTP_SECRET
from portal.management.commands.staff_totp import staff_totp_enrol

pytestmark = pytest.mark.django_db


@pytest.fixture
def otp_required(settings):
    settings.ADMIN_REQUIRE_OTP = True


@pytest.fixture
def staff(db):
    return StaffUserFactory(username="maria")


def _login(client, staff, token=""):
    return client.post("/admin/login/?next=/admin/", {"username": staff.username, "password": DEFAULT_PASSWORD,
                                                      "otp_token": token}, REMOTE_ADDR="203.0.113.9")


def test_password_alone_opens_nothing(client, staff, otp_required):
    device = staff_totp_enrol(user=staff)
    response = _login(client, staff)
    assert response.status_code == 200 and response.context["form"].errors
    assert client.get("/admin/").status_code == 302
    wrong = str((int(totp(device.bin_key)) + 1) % 1000000).zfill(6)
    assert _login(client, staff, wrong).status_code == 200
    assert client.get("/admin/").status_code == 302


def test_password_and_code_open_the_admin(client, staff, otp_required):
    device = staff_totp_enrol(user=staff)
    response = _login(client, staff, str(totp(device.bin_key)).zfill(6))
    assert response.status_code == 302, response.context["form"].errors
    assert client.get("/admin/").status_code == 200


def test_a_session_without_second_factor_is_not_staff(client, staff, otp_required):
    client.force_login(staff)  # e.g. a password-only session from the customer login page
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_without_a_device_cannot_log_in(client, staff, otp_required):
    assert _login(client, staff, "123456").status_code == 200
    assert client.get("/admin/").status_code == 302


def test_deploy_check_fails_when_switched_off(settings):
    settings.ADMIN_REQUIRE_OTP = False
    assert [error.id for error in check_admin_second_factor(None)] == ["portal.E101"]
    settings.ADMIN_REQUIRE_OTP = True
    assert check_admin_second_factor(None) == []


def test_staff_totp_command_uses_the_documented_demo_secret(staff):
    call_command("staff_totp", staff.username, "--secret", DEMO_ADMIN_TOTP_SECRET)
    device = TOTPDevice.objects.get(user=staff)
    assert device.confirmed
    assert device.bin_key == b"Hello!\xde\xad\xbe\xefHello!\xde\xad\xbe\xef"  # base32 of the documented secret


def test_demo_staff_user_logs_in_with_the_documented_secret(client, otp_required):
    import base64

    call_command("seed_demo")
    code = str(totp(base64.b32decode(DEMO_ADMIN_TOTP_SECRET))).zfill(6)
    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "admin-demo-2026", "otp_token": code})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_demo_seeded_before_the_second_factor_gets_the_documented_device_on_the_next_start(client, otp_required):
    import base64
    import io

    call_command("seed_demo", stdout=io.StringIO())
    TOTPDevice.objects.all().delete()  # as seeded by a version before /admin/ required a second factor
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo data already present." in out.getvalue() and DEMO_ADMIN_TOTP_SECRET in out.getvalue()
    code = str(totp(base64.b32decode(DEMO_ADMIN_TOTP_SECRET))).zfill(6)
    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "admin-demo-2026", "otp_token": code})
    assert response.status_code == 302 and client.get("/admin/").status_code == 200
    call_command("seed_demo", stdout=io.StringIO())
    assert TOTPDevice.objects.filter(user__username="admin").count() == 1  # idempotent
