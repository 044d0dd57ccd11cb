"""Conversions against hand-computed values from a fixed table (per 1 EUR: USD 1.1607, JPY 176.45,
RUB 94.5 fixed by staff). Cross rates are rounded to 12 places, results half-up to the minor unit."""
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import LedgerTransaction
from billing.money import format_money, quantize
from billing.rates import RateError, RateTable
from billing.selectors import balance_of
from billing.services.currency import account_currency_change, account_currency_change_preview
from billing.services.errors import BillingError
from billing.services.payments import payment_record
from billing.services.rates import currency_fixed_rate_set


def test_quantize_rounds_half_up_to_minor_units():
    assert quantize(Decimal("1.005"), "EUR") == Decimal("1.01")
    assert quantize(Decimal("-1.005"), "EUR") == Decimal("-1.01")
    assert quantize(Decimal("2.5"), "JPY") == Decimal("3")
    assert quantize(Decimal("2.4999"), "JPY") == Decimal("2")
    assert format_money(Decimal("1234.5"), "EUR", "en") == "€1,234.50"
    assert format_money(Decimal("1234"), "JPY", "en") == "¥1,234"
    with pytest.raises(TypeError):
        quantize(1.5, "EUR")


@pytest.mark.django_db
def test_cross_rates(currencies):
    table = RateTable()
    assert table.quote("USD", "EUR").rate == Decimal("0.861549065219")
    assert table.quote("EUR", "JPY").rate == Decimal("176.45")
    assert table.quote("JPY", "RUB").rate == Decimal("0.535562482290")
    assert table.quote("RUB", "USD").rate == Decimal("0.012282539683")
    assert table.quote("RUB", "JPY").rate == Decimal("1.867195767196")


@pytest.mark.django_db
def test_conversion_chain_eur_usd_rub_jpy(currencies, customer, owner):
    # 100.00 USD paid into a EUR account: 100 / 1.1607 = 86.1549… -> 86.15 EUR.
    payment = payment_record(idempotency_key="usd-1", customer=customer, amount=Decimal("100.00"),
                             currency="USD", method="bank_transfer")
    assert balance_of(customer) == Decimal("86.15")
    tx = payment.ledger_transactions.get()
    assert payment.rate == tx.rate == Decimal("0.861549065219") and tx.rate_as_of is not None
    assert payment.credited_amount == Decimal("86.15") and payment.credited_currency == "EUR"

    # EUR -> JPY: 86.15 × 176.45 = 15201.1675 -> 15201 JPY (0 decimals).
    account_currency_change(customer=customer, currency="JPY", expected_rate=Decimal("176.45"), actor=owner)
    customer.refresh_from_db()
    assert customer.currency == "JPY" and balance_of(customer) == Decimal("15201")

    # JPY -> RUB: 15201 × 0.535562482290 = 8141.0852… -> 8141.09 RUB.
    account_currency_change(customer=customer, currency="RUB", expected_rate=Decimal("0.535562482290"), actor=owner)
    customer.refresh_from_db()
    assert balance_of(customer) == Decimal("8141.09")

    # RUB -> USD: 8141.09 × 0.012282539683 = 99.9932… -> 99.99 USD.
    account_currency_change(customer=customer, currency="USD", expected_rate=Decimal("0.012282539683"), actor=owner)
    customer.refresh_from_db()
    assert balance_of(customer) == Decimal("99.99")

    conversions = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.CONVERSION).order_by("pk")
    assert [(t.rate_from, t.rate_to, t.rate) for t in conversions] == [
        ("EUR", "JPY", Decimal("176.45")), ("JPY", "RUB", Decimal("0.535562482290")), ("RUB", "USD", Decimal("0.012282539683")),
    ]
    # Each conversion is a visible pair on the customer's accounts: old currency out, new currency in.
    first = conversions[0].entries.filter(account__customer=customer).order_by("pk")
    assert [(e.currency, e.amount) for e in first] == [("EUR", Decimal("-86.15")), ("JPY", Decimal("15201"))]
    call_command("audit_ledger")


@pytest.mark.django_db
def test_currency_change_refuses_a_changed_rate(currencies, customer, fund):
    fund(customer, "10.00")
    with pytest.raises(BillingError):
        account_currency_change(customer=customer, currency="USD", expected_rate=Decimal("1.2"))
    assert balance_of(customer) == Decimal("10.00")


@pytest.mark.django_db
def test_stale_rate_blocks_conversion_until_staff_fix_it(currencies, customer, settings):
    """A conversion the customer asks for waits for a fresh rate (money already captured does not:
    see test_refunds.py::test_captured_payment_at_a_stale_rate_is_recorded_and_flagged)."""
    from django.utils import timezone

    from billing.models import Currency

    Currency.objects.filter(code="USD").update(rate_updated_at=timezone.now() - timezone.timedelta(hours=settings.BILLING_RATE_MAX_AGE_HOURS + 1))
    assert RateTable().stale("USD")
    with pytest.raises(RateError):
        account_currency_change_preview(customer=customer, currency="USD")
    currency_fixed_rate_set(code="USD", rate=Decimal("1.16"))
    payment_record(idempotency_key="usd-fresh", customer=customer, amount=Decimal("5.80"), currency="USD", method="bank_transfer")
    assert balance_of(customer) == Decimal("5.00")
