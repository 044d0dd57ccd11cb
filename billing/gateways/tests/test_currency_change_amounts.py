"""An account currency change moves every stored amount with the balance, under one lock: the
auto-payment cap and the low-balance threshold carry their currency and are converted at the switch's
rate; the switch raises no false low-balance alert; and a payment recorded while the switch runs is
credited to the new currency's account, never stranded in the old one."""
import threading
import time
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from accounts.models import Customer
from accounts.services.profile import customer_update_preferences
from billing.gateways import selectors, services
from billing.gateways.models import AutopayCharge, AutopaySettings
from billing.models import LedgerAccount
from billing.selectors import balance_of
from billing.services.currency import account_currency_change, account_currency_change_preview
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.ledger import provider_account
from billing.services.payments import payment_record
from notifications.models import Notification


def in_currency(customer: Customer, currency: str, threshold: str = "0") -> Customer:
    customer.currency = customer.low_balance_threshold_currency = currency
    customer.low_balance_threshold = Decimal(threshold)
    customer.save()
    return customer


def switch(customer: Customer, currency: str):
    rate = account_currency_change_preview(customer=customer, currency=currency).quote.rate
    tx = account_currency_change(customer=customer, currency=currency, expected_rate=rate)
    customer.refresh_from_db()
    return rate, tx


@pytest.mark.django_db
def test_cap_and_threshold_are_converted_with_the_switch(gateways_on, customer, sandbox_card, fund):
    in_currency(customer, "RUB", threshold="5000.00")
    fund(customer, "10000.00")
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(), monthly_limit=Decimal("5000.00"))
    assert AutopaySettings.objects.get(customer=customer).monthly_limit_currency == "RUB"

    rate, _tx = switch(customer, "EUR")

    assert rate == Decimal("0.010582010582")  # 1 / 94.50
    assert (customer.low_balance_threshold, customer.low_balance_threshold_currency) == (Decimal("52.91"), "EUR")
    cap = AutopaySettings.objects.get(customer=customer)
    assert (cap.monthly_limit, cap.monthly_limit_currency) == (Decimal("52.91"), "EUR")
    assert balance_of(customer) == Decimal("105.82")

    # The old 5,000 cap is not 5,000 EUR now: a large need is charged up to the converted cap only.
    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("3000.00"), reason="renewals") is True
    charge = AutopayCharge.objects.get()
    assert (charge.amount, charge.currency) == (Decimal("52.91"), "EUR")


@pytest.mark.django_db
def test_switching_the_currency_does_not_reset_what_is_left_of_the_months_cap(gateways_on, customer, sandbox_card):
    in_currency(customer, "RUB")
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(), monthly_limit=Decimal("5000.00"))
    with time_machine.travel(datetime(2027, 3, 1, 9, tzinfo=dt_timezone.utc), tick=False):
        assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("4000.00"), reason="low") is True
    with time_machine.travel(datetime(2027, 3, 2, 9, tzinfo=dt_timezone.utc), tick=False):
        switch(customer, "EUR")
        assert selectors.card_auto_top_up_month_used(customer=customer, today=datetime(2027, 3, 2).date()) == Decimal("42.33")
    with time_machine.travel(datetime(2027, 3, 3, 9, tzinfo=dt_timezone.utc), tick=False):
        assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("3000.00"), reason="low") is True
    assert AutopayCharge.objects.order_by("day").last().amount == Decimal("10.58")  # 52.91 cap - 42.33 used


@pytest.mark.django_db
def test_switch_sends_no_low_balance_alert_and_the_alert_follows_the_new_threshold(gateways_on, customer, fund, make_invoice):
    in_currency(customer, "EUR", threshold="10.00")
    fund(customer, "40.00")

    switch(customer, "USD")

    assert not Notification.objects.filter(customer=customer, kind="low_balance").exists()  # no "€0.00" alert
    assert (customer.low_balance_threshold, customer.low_balance_threshold_currency) == (Decimal("11.61"), "USD")
    assert balance_of(customer) == Decimal("46.43")
    # Spending below the converted threshold alerts once, in the new currency.
    invoice = make_invoice(customer, "40.00", currency="USD")
    assert invoice_pay_from_balance(invoice=invoice) is True
    alert = Notification.objects.get(customer=customer, kind="low_balance")
    assert "$6.43" in alert.body_text and "$11.61" in alert.body_text


@pytest.mark.django_db
def test_an_already_alerted_balance_is_not_alerted_again_by_the_switch(gateways_on, customer, fund, make_invoice):
    in_currency(customer, "EUR", threshold="50.00")
    fund(customer, "40.00")
    assert Notification.objects.filter(customer=customer, kind="low_balance").count() == 1

    switch(customer, "USD")

    assert Notification.objects.filter(customer=customer, kind="low_balance").count() == 1


@pytest.mark.django_db
def test_a_threshold_typed_before_the_switch_is_refused_after_it(gateways_on, owner, customer, fund):
    fund(customer, "10.00")
    switch(customer, "USD")

    with pytest.raises(ValidationError) as refused:
        customer_update_preferences(
            customer=customer, actor=owner, newsletter=False, low_balance_threshold=Decimal("20.00"),
            auto_renew_default=True, site_currency="EUR", pay_without_login=False, language="en", threshold_currency="EUR")
    assert "now USD" in str(refused.value)
    customer_update_preferences(
        customer=customer, actor=owner, newsletter=False, low_balance_threshold=Decimal("20.00"),
        auto_renew_default=True, site_currency="EUR", pay_without_login=False, language="en", threshold_currency="USD")
    customer.refresh_from_db()
    assert (customer.low_balance_threshold, customer.low_balance_threshold_currency) == (Decimal("20.00"), "USD")


def _waiting_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def _wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_a_payment_recorded_during_the_switch_credits_the_new_currency(currencies, customer):
    """Real parallel transactions: the switch is held (by this test's lock on the FX account) after it
    took its own locks; a bank transfer is recorded meanwhile; then the switch is let go."""
    in_currency(customer, "RUB")
    payment_record(idempotency_key="race:fund", customer=customer, amount=Decimal("9450.00"),
                   currency="RUB", method="bank_transfer")
    provider_account(kind=LedgerAccount.Kind.FX, currency="EUR")
    rate = account_currency_change_preview(customer=customer, currency="EUR").quote.rate
    stale_customer = Customer.objects.get(pk=customer.pk)  # as a webhook loaded it before the switch
    errors = []

    def in_thread(fn):
        def run():
            try:
                fn()
            except Exception as exc:  # reported to the test
                errors.append(exc)
            finally:
                connection.close()
        return threading.Thread(target=run)

    switching = in_thread(lambda: account_currency_change(customer=customer, currency="EUR",
                                                          expected_rate=rate))
    paying = in_thread(lambda: payment_record(
        idempotency_key="race:transfer", customer=stale_customer, amount=Decimal("9450.00"), currency="RUB",
        method="bank_transfer"))
    with transaction.atomic():
        LedgerAccount.objects.select_for_update().get(code="fx:EUR")
        switching.start()
        _wait_until(lambda: _waiting_locks() >= 1, "the switch to wait for the FX account")
        paying.start()
        _wait_until(lambda: _waiting_locks() >= 2, "the payment to wait for the switch")
    switching.join(30)
    paying.join(30)

    assert errors == []
    customer.refresh_from_db()
    assert customer.currency == "EUR"
    assert LedgerAccount.objects.get(code=f"customer:{customer.pk}:RUB").balance == 0  # nothing stranded
    assert balance_of(customer) == Decimal("200.00")  # 9,450 RUB converted, then 9,450 RUB credited at the rate


@pytest.mark.django_db(transaction=True)
def test_switch_racing_payments_and_invoice_payments_strands_nothing_and_never_deadlocks(currencies, customer):
    """The switch and payments in both lock paths (onto an invoice, and to the balance), all released at once."""
    from billing.tests.concurrency import run_concurrently

    in_currency(customer, "RUB")
    payment_record(idempotency_key="storm:fund", customer=customer, amount=Decimal("945.00"),
                   currency="RUB", method="bank_transfer")
    invoices = [invoice_issue(
        customer=customer, kind="order", currency="RUB",
        lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("94.50"))]) for _ in range(3)]
    rate = account_currency_change_preview(customer=customer, currency="EUR").quote.rate
    stale = Customer.objects.get(pk=customer.pk)

    def act(what, n):
        if what == "switch":
            return account_currency_change(customer=customer, currency="EUR", expected_rate=rate)
        if what == "invoice":
            return payment_record(idempotency_key=f"storm:inv:{n}", customer=stale, amount=Decimal("94.50"),
                                  currency="RUB", method="bank_transfer", invoice=invoices[n])
        if what == "pay":
            return invoice_pay_from_balance(invoice=invoices[n])
        return payment_record(idempotency_key=f"storm:top:{n}", customer=stale, amount=Decimal("94.50"),
                              currency="RUB", method="bank_transfer")

    _results, errors = run_concurrently(act, [("switch", 0), ("invoice", 0), ("invoice", 1), ("pay", 2), ("topup", 0),
                                              ("topup", 1)])

    assert errors == []
    customer.refresh_from_db()
    assert customer.currency == "EUR"
    assert LedgerAccount.objects.get(code=f"customer:{customer.pk}:RUB").balance == 0
    # 945 + 2 x 94.50 top-ups = 1,134 RUB in, one invoice (94.50 RUB) paid from the balance: 1,039.50 RUB = 11.00 EUR.
    assert balance_of(customer) == Decimal("11.00")
