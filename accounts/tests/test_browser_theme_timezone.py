"""Dark theme and a non-default time zone across the main pages, in a real browser (screenshots reviewed)."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest

from accounts.models import Customer, User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# 20:30 UTC on 1 March is already 2 March in Tokyo (UTC+9): the pages must show the 2nd.
MOMENT = datetime(2026, 3, 1, 20, 30, tzinfo=dt_timezone.utc)


def seed(user):
    from billing.services.invoices import LineInput, invoice_issue
    from billing.services.payments import payment_record
    from billing.models import Invoice
    from billing.tests.factories import make_currencies
    from orders.models import Order
    from orders.tests.factories import PlanFactory

    make_currencies()
    payment_record(idempotency_key="browser-theme", customer=user.customer, amount=Decimal("40.00"),
                   currency="EUR", method="bank_transfer")
    invoice = invoice_issue(customer=user.customer, kind="advance", lines=[
        LineInput(description="Balance top-up", quantity=1, unit_price=Decimal("15.00"))])
    Invoice.objects.filter(pk=invoice.pk).update(issued_at=MOMENT)
    Order.objects.create(customer=user.customer, plan=PlanFactory(name="VPS Dark"), period_months=1,
                         price=Decimal("10.00"), currency="EUR", status=Order.Status.ACTIVE, ip="192.0.2.10",
                         anchor_at=MOMENT - timedelta(days=30), anchor_months=1, period_started_at=MOMENT,
                         expires_at=MOMENT, current_period=1)


def test_dark_theme_and_tokyo_time_over_dashboard_invoices_and_orders(page, login, screenshot):
    user = UserFactory(username="night", first_name="Nora", last_name="Night")
    Customer.objects.filter(pk=user.customer_id).update(timezone="Asia/Tokyo")
    seed(user)
    login("night", DEFAULT_PASSWORD)

    page.goto("/")
    assert page.get_attribute("html", "data-bs-theme") == "light"
    page.click("[data-testid=user-menu]")
    page.click("[data-testid=theme-dark]")
    page.wait_for_load_state("networkidle")
    assert page.get_attribute("html", "data-bs-theme") == "dark"
    assert User.objects.get(pk=user.pk).theme == "dark"
    screenshot("accounts-dark-dashboard")

    page.goto("/billing/invoices/?status=all")
    assert page.get_attribute("html", "data-bs-theme") == "dark"
    row = page.locator("table tbody tr").first.inner_text()
    assert "03/02/2026" in row, row  # Tokyo date, not the UTC 03/01
    screenshot("accounts-dark-invoices")

    page.goto("/orders/")
    body = page.locator("table tbody").inner_text()
    assert "VPS Dark" in body and "03/02/2026" in body, body
    screenshot("accounts-dark-orders")

    page.goto("/accounts/settings/preferences/")
    assert page.locator("select[name=time_zone]").input_value() == "Asia/Tokyo"
    screenshot("accounts-dark-preferences")

    page.click("[data-testid=user-menu]")
    page.click("[data-testid=theme-light]")
    page.wait_for_load_state("networkidle")
    assert page.get_attribute("html", "data-bs-theme") == "light"


def test_policy_banner_review_accept_avatar_and_privacy_page(page, login, screenshot, tmp_path, settings):
    import io

    from PIL import Image

    from accounts.models import PolicyAcceptance
    from accounts.services.policies import policy_publish, policy_version_create
    from accounts.tests.factories import StaffUserFactory

    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    user = UserFactory(username="policy", first_name="Paula", last_name="Reader")
    staff = StaffUserFactory()
    policy = policy_version_create(
        kind="privacy", title="Privacy policy", staff=staff, changes="We now keep server logs for 30 days.",
        text="We process your data to provide the services.\n\nServer logs are kept for 30 days.")
    policy_publish(policy=policy, staff=staff)
    login("policy", DEFAULT_PASSWORD)
    page.goto("/accounts/settings/profile/")
    page.wait_for_selector("[data-testid=policy-banner]")
    screenshot("accounts-policy-banner")
    page.click("[data-testid=policy-banner] a")
    page.wait_for_selector("[data-testid=review-privacy]")
    screenshot("accounts-policy-review")
    page.click("[data-testid=accept-policies]")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=policy-banner]").count() == 0
    assert PolicyAcceptance.objects.filter(user=user, policy=policy).exists()

    buffer = io.BytesIO()
    Image.new("RGB", (600, 600), (30, 110, 200)).save(buffer, format="JPEG")
    avatar = tmp_path / "me.jpg"
    avatar.write_bytes(buffer.getvalue())
    page.goto("/accounts/settings/profile/")
    page.set_input_files("input[name=avatar]", str(avatar))
    page.click("[data-testid=save-avatar]")
    page.wait_for_selector("[data-testid=avatar-preview]")
    page.wait_for_function("() => { const img = document.querySelector('[data-testid=nav-avatar]');"
                           " return img && img.complete && img.naturalWidth > 0; }")
    assert page.locator("[data-testid=nav-avatar]").evaluate("img => img.naturalWidth") == 256
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("accounts-avatar", full_page=False)

    page.goto("/accounts/settings/privacy/")
    page.click("[data-testid=request-export]")
    page.wait_for_selector("[data-testid=exports]")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("accounts-privacy")


def test_social_login_buttons_and_linked_logins_in_settings(page, login, screenshot, settings):
    from allauth.socialaccount.models import SocialAccount

    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {"APPS": [{"client_id": "g", "secret": "s"}]},
        "facebook": {"METHOD": "oauth2", "APPS": [{"client_id": "f", "secret": "s"}]},
    }
    user = UserFactory(username="social")
    SocialAccount.objects.create(user=user, provider="google", uid="1", extra_data={"email": "social@gmail.test"})
    page.goto("/accounts/login/")
    assert page.locator("[data-testid=social-google]").is_visible()
    screenshot("accounts-login-social")
    login("social", DEFAULT_PASSWORD)
    page.goto("/accounts/settings/security/#social-login")
    section = page.locator("[data-testid=section-social]")
    assert "social@gmail.test" in section.inner_text() and section.locator("[data-testid=link-facebook]").is_visible()
    page.evaluate("document.getElementById('social-login').scrollIntoView(); window.scrollBy(0, -80)")
    screenshot("accounts-social-settings", full_page=False)


def test_privacy_page_in_russian_dark(page, login, screenshot):
    user = UserFactory(username="rus", first_name="Ирина", last_name="Петрова", theme="dark")
    Customer.objects.filter(pk=user.customer_id).update(language="ru", timezone="Europe/Moscow")
    login("rus", DEFAULT_PASSWORD)
    page.goto("/accounts/settings/privacy/")
    assert "Выгрузка моих данных" in page.inner_text("main")
    screenshot("accounts-privacy-ru-dark")
