"""Balance history and expenses in Chromium: keyset pager (Older / Oldest / Newer / Newest), the
money in/out filter, and the stored funding on the Expenses page."""
from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.models import LedgerEntry
from billing.services import invoices, payments

from .factories import make_currencies

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _rows(page) -> list[int]:
    return [int(pk) for pk in page.locator("[data-testid=movements] tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.entry)")]


def test_history_pages_filter_and_expenses(page, login, screenshot):
    make_currencies()
    owner = UserFactory()
    customer = owner.customer
    first = payments.payment_record(idempotency_key="h:first", customer=customer, amount=Decimal("40.00"), currency="EUR",
                                    method="bank_transfer")
    for n in range(24):
        payments.payment_record(idempotency_key=f"h:{n}", customer=customer, amount=Decimal("5.00"), currency="EUR",
                                method="bank_transfer")
        invoice = invoices.invoice_issue(customer=customer, kind="order", lines=[
            invoices.LineInput(description=f"VPS S #{n}", quantity=1, unit_price=Decimal("3.00"))])
        invoices.invoice_pay_from_balance(invoice=invoice)
    entries = list(LedgerEntry.objects.filter(account__customer=customer).order_by("-pk").values_list("pk", "amount"))
    assert len(entries) == 49
    login(owner.username, DEFAULT_PASSWORD)

    page.goto("/billing/")
    assert _rows(page) == [pk for pk, _amount in entries[:20]]
    assert page.get_by_test_id("page-newer").count() == 0
    page.get_by_test_id("page-older").click()
    page.wait_for_url("**/billing/?before=*")
    assert _rows(page) == [pk for pk, _amount in entries[20:40]]
    page.get_by_test_id("page-oldest").click()
    page.wait_for_url("**/billing/?oldest=1")
    assert _rows(page) == [pk for pk, _amount in entries[-20:]]
    assert page.get_by_test_id("page-older").count() == 0
    screenshot("billing-history-oldest")
    page.get_by_test_id("page-newest").click()
    assert _rows(page) == [pk for pk, _amount in entries[:20]]

    page.get_by_test_id("movements-out").click()
    page.wait_for_url("**/billing/?direction=out")
    debits = [pk for pk, amount in entries if amount < 0]
    assert _rows(page) == debits[:20]
    page.get_by_test_id("page-older").click()
    page.wait_for_url("**direction=out**")
    assert _rows(page) == debits[20:]
    assert "direction=out" in page.get_by_test_id("page-newer").get_attribute("href")
    screenshot("billing-history-money-out-older")

    page.goto("/billing/expenses/")
    table = page.get_by_test_id("expense-table")
    assert table.locator("tbody tr").count() == 20
    newest = table.locator("tbody tr").first.inner_text()
    assert "VPS S #23" in newest and "€3.00" in newest
    screenshot("billing-expenses")
    page.goto("/billing/expenses/?oldest=1")
    oldest = page.get_by_test_id("expense-table").locator("tbody tr").last.inner_text()
    assert "VPS S #0" in oldest and f"Payment #{first.pk} (Bank transfer): €3.00" in oldest
