from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue
from billing.services.payments import payment_record

from .factories import make_currencies

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_topup_in_another_currency_pay_and_see_balance(page, login, screenshot):
    make_currencies()
    owner = UserFactory()
    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/billing/")
    assert page.get_by_test_id("topbar-balance").inner_text() == "€0.00"

    page.fill("#id_amount", "100")
    page.select_option("#id_currency", "USD")
    # Recalculated live (htmx) at the fixed test rates: 100 / 1.1607 = €86.15; 100 × 176.45 / 1.1607 = ¥15,202.
    page.get_by_test_id("equivalent-EUR").wait_for()
    assert page.get_by_test_id("equivalent-EUR").inner_text() == "€86.15"
    assert page.get_by_test_id("equivalent-JPY").inner_text() == "¥15,202"
    screenshot("billing-topup-live")

    page.get_by_test_id("topup-submit").click()
    page.wait_for_url("**/billing/invoices/*/")
    invoice = Invoice.objects.get(customer=owner.customer)
    assert page.get_by_test_id("invoice-total").inner_text() == "$100.00"
    screenshot("billing-advance-invoice")

    page.goto("/billing/invoices/?status=unpaid")
    assert page.get_by_test_id(f"invoice-row-{invoice.number}").is_visible()
    screenshot("billing-invoices-unpaid")

    payment_record(idempotency_key="browser-test:1", customer=owner.customer, amount=Decimal("100.00"),
                   currency="USD", method="bank_transfer", invoice=invoice)

    page.goto("/billing/invoices/?status=unpaid")
    assert page.get_by_test_id("invoices-empty").is_visible()
    page.goto("/billing/invoices/?status=paid")
    row = page.get_by_test_id(f"invoice-row-{invoice.number}")
    assert "Paid" in row.inner_text()
    assert page.get_by_test_id("topbar-balance").inner_text() == "€86.15"
    screenshot("billing-invoices-paid")

    page.goto("/billing/")
    assert page.get_by_test_id("balance-amount").inner_text() == "€86.15"
    screenshot("billing-balance-after")


def test_russian_balance_and_partial_payment_page(page, login, screenshot):
    make_currencies()
    owner = UserFactory()
    owner.customer.language = "ru"
    owner.customer.save()
    payment_record(idempotency_key="ru:1", customer=owner.customer, amount=Decimal("30.00"), currency="EUR", method="bank_transfer")
    invoice = invoice_issue(customer=owner.customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS Start — 1 мес.", quantity=1, unit_price=Decimal("50.00"))])
    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/billing/")
    assert "Пополнить внутренний баланс" in page.content()
    screenshot("billing-balance-ru")
    page.goto(f"/billing/invoices/{invoice.pk}/")
    page.get_by_test_id("apply-balance").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_test_id("invoice-due").inner_text() == "20,00\xa0€"
    assert page.get_by_test_id("topbar-balance").inner_text() == "0,00\xa0€"
    screenshot("billing-invoice-partial-ru")
