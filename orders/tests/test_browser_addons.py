"""End to end in Chromium: order a VPS with add-ons and a promo code (the price summary follows the
form with htmx), then add an extra IPv4 address to the running service two weeks later."""
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.models import Invoice
from billing.selectors import balance_of
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import IpAddress, Order, OrderAddon, PromoCode

from .factories import PlanFactory, standard_addons

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JAN31 = datetime(2026, 1, 31, 12, 0, tzinfo=dt_timezone.utc)  # the first period runs to Feb 28: 28 days
FEB14 = datetime(2026, 2, 14, 12, 0, tzinfo=dt_timezone.utc)  # 14 of them left


def summary_shows(page, test_id: str, text: str) -> None:
    page.locator(f"#order-summary [data-testid={test_id}]").filter(has_text=text).wait_for()


def test_order_with_addons_and_a_promo_code_then_add_an_address_later(page, login, screenshot, settings):
    # The server's clock is frozen (ticking) while the browser's is not: cookies must not carry an expiry.
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    settings.CSRF_COOKIE_AGE = None
    make_currencies()
    owner = UserFactory(first_name="Alex", last_name="Demo")
    payment_record(idempotency_key="browser-addons-fund", customer=owner.customer, amount=Decimal("100.00"),
                   currency="EUR", method="bank_transfer")
    plan = PlanFactory(name="VPS Start", code="vps-start")
    addons = standard_addons(plan)
    PromoCode.objects.create(code="SAVE10", value=Decimal("10"), applies_to_plan=True, applies_to_addons=True)

    with time_machine.travel(JAN31, tick=True):
        login(owner.username, DEFAULT_PASSWORD)
        page.goto("/orders/new/")
        page.get_by_test_id("order-plan-vps-start").click()
        page.fill("input[name=hostname]", "web1.example.com")
        summary_shows(page, "review-total", "€10.00")
        page.select_option(f"select[name=addon_{addons['ram'].pk}]", "2")
        page.select_option(f"select[name=addon_{addons['backups'].pk}]", "1")
        summary_shows(page, "review-total", "€20.00")  # 10.00 + 2 × 3.00 + 4.00
        page.fill("input[name=promo_code]", "save10")
        # By hand: 10 % off the plan (1.00) and each add-on (0.60, 0.40): 20.00 − 2.00 = 18.00 (no tax configured).
        summary_shows(page, "review-total", "€18.00")
        summary_shows(page, "review-discount", "−€2.00")
        screenshot("orders-addons-order-form")
        page.get_by_test_id("order-review").click()
        assert page.get_by_test_id("review-total").inner_text().startswith("€18.00")
        assert "Each renewal: €20.00" in page.get_by_test_id("review-renewal").inner_text()
        page.get_by_test_id("order-confirm").click()
        page.get_by_test_id("detail-ip").wait_for()
    order = Order.objects.get()
    invoice = Invoice.objects.get(pk=order.invoice_id)
    assert (invoice.total, invoice.status, order.addons_price) == (Decimal("18.00"), Invoice.Status.PAID, Decimal("10.00"))

    with time_machine.travel(FEB14, tick=True):  # two weeks later: the session has expired meanwhile
        login(owner.username, DEFAULT_PASSWORD)
        page.goto(f"/orders/{order.pk}/")
        page.get_by_test_id("action-addons").click()
        page.select_option(f"[data-testid=addon-quantity-{addons['ipv4'].pk}]", "1")
        page.get_by_test_id(f"addon-quote-{addons['ipv4'].pk}").click()
        # By hand: 2.50 × 14/28 = 1.25 listed; the code (first period) takes 10 %: 2.25 × 14/28 = 1.125 -> 1.13.
        assert page.get_by_test_id("addon-days").inner_text() == "14 / 28"
        assert page.get_by_test_id("addon-discount").inner_text() == "−€0.12"
        assert page.get_by_test_id("addon-amount").inner_text() == "€1.13"
        screenshot("orders-addons-quote")
        page.get_by_test_id("addon-submit").click()
        page.get_by_test_id(f"held-addon-{addons['ipv4'].pk}").wait_for()
        extra = IpAddress.objects.get(order=order, extra=True).address
        assert extra in page.get_by_test_id("extra-ips").inner_text()
        screenshot("orders-addons-service-page")
    assert OrderAddon.objects.get(order=order, addon=addons["ipv4"]).quantity == 1
    assert balance_of(owner.customer) == Decimal("100.00") - Decimal("18.00") - Decimal("1.13")
