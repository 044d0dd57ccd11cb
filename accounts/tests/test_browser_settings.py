"""Settings in a real browser: two-factor login end to end, and screenshots of every section."""
from base64 import b32decode

import pytest
from django_otp.oath import totp

from accounts.models import Customer, User
from accounts.services.activity import activity_record
from accounts.services.trusted_users import trusted_user_invite
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def code_for(secret: str, drift: int = 0) -> str:
    return f"{totp(b32decode(secret), step=30, t0=0, digits=6, drift=drift):06d}"


def test_enable_2fa_from_the_qr_secret_then_log_in_with_a_code_and_a_recovery_code(page, login, screenshot):
    UserFactory(username="secure", email="secure@example.com")
    login("secure", DEFAULT_PASSWORD)
    page.goto("/accounts/settings/security/")
    page.click("[data-testid=start-2fa]")
    page.wait_for_selector("[data-testid=otp-qr] svg")
    secret = page.inner_text("[data-testid=otp-secret]").strip()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("accounts-2fa-setup")
    page.fill("input[name=token]", code_for(secret))
    page.click("[data-testid=confirm-2fa]")
    page.wait_for_selector("[data-testid=recovery-codes]")
    codes = page.locator("[data-testid=recovery-codes] li").all_inner_texts()
    assert len(codes) == 10
    screenshot("accounts-2fa-recovery-codes")

    page.click("[data-testid=user-menu]")
    page.click("[data-testid=logout]")
    page.wait_for_url("**/accounts/login/")
    login("secure", DEFAULT_PASSWORD)
    page.wait_for_url("**/accounts/login/verify/")
    screenshot("accounts-2fa-login-step")
    # The enabling code was used in this time step already; the next step's code is inside the tolerance.
    page.fill("input[name=token]", code_for(secret, drift=1))
    page.click("[data-testid=verify-otp]")
    page.wait_for_selector("[data-testid=dashboard-client-id]")

    page.click("[data-testid=user-menu]")
    page.click("[data-testid=logout]")
    login("secure", DEFAULT_PASSWORD)
    page.fill("input[name=token]", codes[0])
    page.click("[data-testid=verify-otp]")
    page.wait_for_selector("[data-testid=dashboard-client-id]")
    page.click("[data-testid=user-menu]")
    page.click("[data-testid=logout]")
    login("secure", DEFAULT_PASSWORD)
    page.fill("input[name=token]", codes[0])  # used up
    page.click("[data-testid=verify-otp]")
    page.wait_for_selector("text=The code is not correct.")
    assert "/accounts/login/verify/" in page.url


SECTIONS = ["profile", "preferences", "email-routing", "security", "password", "activity", "users"]


def test_screenshots_of_every_settings_section(page, login, screenshot, live_server):
    owner = UserFactory(username="shots", email="shots@example.com", first_name="Maria", last_name="Keller")
    Customer.objects.filter(pk=owner.customer_id).update(
        profile_type="company", company_name="Keller Hosting GmbH", company_registration_number="HRB 12345",
        verification_status="pending", ip_allowlist="127.0.0.1 # office\n10.10.1.0/24")
    User.objects.filter(pk=owner.pk).update(phone="+4915123456789", phone_verified=True)
    UserFactory(customer=owner.customer, role="finance", username="anna.fin", first_name="Anna", last_name="Berg")
    trusted_user_invite(customer=owner.customer, actor=owner, username="tom.tech", email="tom@example.com",
                        first_name="Tom", last_name="Ito", role="technical")
    activity_record(action="login_failed", customer=owner.customer, actor=owner, ip="203.0.113.9",
                    details={"reason": "password"})
    login("shots", DEFAULT_PASSWORD)
    for section in SECTIONS:
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(f"/accounts/settings/{section}/" if section != "password" else "/accounts/password/change/")
        page.wait_for_selector(".settings-section")
        screenshot(f"accounts-settings-{section}")
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        screenshot(f"accounts-settings-{section}-phone")
    # The sub-navigation is reachable at phone width, and Russian renders too.
    assert page.locator("[data-testid=settings-tabs]").is_visible()
    page.click("[data-testid=lang-ru]")
    page.goto("/accounts/settings/profile/")
    page.wait_for_selector("text=Контактная информация")
    screenshot("accounts-settings-profile-ru-phone")
