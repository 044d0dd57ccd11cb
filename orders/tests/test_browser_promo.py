"""End to end in Chromium: order a VPS with a promo code; the review and the invoice show the discount."""
from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.models import Invoice
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import Order, PromoCode

from .factories import PlanFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_order_with_a_promo_code(page, login, screenshot):
    make_currencies()
    owner = UserFactory(first_name="Alex", last_name="Demo")
    payment_record(idempotency_key="browser-promo-fund", customer=owner.customer, amount=Decimal("100.00"),
                   currency="EUR", method="bank_transfer")
    PlanFactory(name="VPS Start", code="vps-start", setup_fee=Decimal("5.00"))
    PromoCode.objects.create(code="WELCOME20", value=Decimal("20"), applies_to_setup_fee=True)
    login(owner.username, DEFAULT_PASSWORD)

    page.goto("/orders/")
    page.get_by_test_id("new-order").click()
    page.get_by_test_id("order-plan-vps-start").click()
    page.fill("input[name=hostname]", "web1.example.com")
    page.fill("input[name=promo_code]", "wrong")
    page.get_by_test_id("order-review").click()
    assert "There is no such promo code." in page.get_by_test_id("order-form").inner_text()
    page.fill("input[name=promo_code]", "welcome20")
    page.get_by_test_id("order-review").click()
    # By hand: (10.00 + 5.00) × 20 % = 3.00 off; 12.00 total (no tax configured).
    assert page.get_by_test_id("review-discount").inner_text().split("\t")[-1].strip() == "−€3.00"
    assert page.get_by_test_id("review-total").inner_text().startswith("€12.00")
    screenshot("orders-review-promo")
    page.get_by_test_id("order-confirm").click()
    page.get_by_test_id("detail-ip").wait_for()
    order = Order.objects.get()
    invoice = Invoice.objects.get(pk=order.invoice_id)
    assert (invoice.total, invoice.status) == (Decimal("12.00"), Invoice.Status.PAID)
    page.goto(f"/billing/invoices/{invoice.pk}/")
    assert "Promo code WELCOME20" in page.content()
    screenshot("orders-invoice-promo")
