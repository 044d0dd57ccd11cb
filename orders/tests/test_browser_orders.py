"""End to end in Chromium: order a VPS from the balance, renew it, look at an upgrade's prorated price."""
import re
from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import Order

from .factories import PlanFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_order_renew_and_upgrade_a_vps(page, login, screenshot):
    make_currencies()
    owner = UserFactory(first_name="Alex", last_name="Demo")
    payment_record(idempotency_key="browser-fund", customer=owner.customer, amount=Decimal("200.00"), currency="EUR",
                   method="bank_transfer")
    small = PlanFactory(name="VPS Start", code="vps-start")
    PlanFactory(name="VPS Pro", code="vps-pro", product_type=small.product_type,
                prices={(1, "EUR"): "40.00", (3, "EUR"): "110.00"})
    login(owner.username, DEFAULT_PASSWORD)

    page.goto("/orders/")
    page.get_by_test_id("new-order").click()
    page.get_by_test_id("order-plan-vps-start").click()
    page.fill("input[name=hostname]", "web1.example.com")
    page.get_by_test_id("order-review").click()
    page.get_by_test_id("review-total").wait_for()
    screenshot("orders-review")
    page.get_by_test_id("order-confirm").click()

    page.get_by_test_id("detail-ip").wait_for()
    order = Order.objects.get()
    assert order.status == Order.Status.ACTIVE
    assert re.fullmatch(r"10\.\d+\.\d+\.\d+", page.get_by_test_id("detail-ip").inner_text())
    assert page.get_by_test_id("order-status").inner_text() == "Active"
    days_before = int(page.get_by_test_id("detail-days").inner_text())
    assert 28 <= days_before <= 31
    page.goto("/orders/")
    row = page.get_by_test_id(f"order-row-{order.pk}")
    assert row.get_by_test_id("order-ip").inner_text() == order.ip
    assert int(row.get_by_test_id("order-days").inner_text()) == days_before
    screenshot("orders-table")

    page.goto(f"/orders/{order.pk}/")
    expiry_before = page.get_by_test_id("detail-expires").inner_text()
    page.get_by_test_id("action-renew").click()
    page.get_by_test_id("renew-periods-3").check()
    screenshot("orders-renew")
    page.get_by_test_id("renew-submit").click()
    page.get_by_test_id("detail-days").wait_for()
    order.refresh_from_db()
    assert order.current_period == 4
    assert page.get_by_test_id("detail-expires").inner_text() != expiry_before
    assert int(page.get_by_test_id("detail-days").inner_text()) >= days_before + 89
    screenshot("orders-detail-renewed")

    page.get_by_test_id("action-change-plan").click()
    page.get_by_test_id("choose-plan-vps-pro").click()
    amount = page.get_by_test_id("prorated-amount").inner_text()
    assert amount.startswith("€") and Decimal(amount[1:]) > 0
    screenshot("orders-change-plan")
    page.get_by_test_id("plan-change-submit").click()
    page.get_by_test_id("detail-ip").wait_for()
    order.refresh_from_db()
    assert order.plan.name == "VPS Pro"
