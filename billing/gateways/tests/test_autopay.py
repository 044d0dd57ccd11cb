from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine

from billing.gateways import selectors, services
from billing.gateways.models import AutopayCharge, PaymentAttempt
from billing.models import Invoice, Payment
from billing.selectors import balance_of
from billing.tests.concurrency import run_concurrently
from notifications.models import Notification


def on(day: int, month: int = 3):
    return time_machine.travel(datetime(2027, month, day, 9, 0, tzinfo=dt_timezone.utc), tick=False)


@pytest.mark.django_db
def test_autopay_never_exceeds_the_monthly_cap_across_many_small_topups(gateways_on, customer, sandbox_card):
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(), monthly_limit=Decimal("50.00"))
    results = []
    for day in range(1, 29):
        with on(day):
            results.append(services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("7.00"), reason="low"))
            # A second run the same day changes nothing.
            assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("7.00"), reason="again") is False

    assert results == [True] * 8 + [False] * 20
    assert list(AutopayCharge.objects.order_by("day").values_list("amount", flat=True)) == [Decimal("7.000")] * 7 + [Decimal("1.000")]
    assert sum(Payment.objects.values_list("amount", flat=True)) == Decimal("50.00")
    assert balance_of(customer) == Decimal("50.00")
    with on(1, month=4):  # a new month, a fresh cap
        assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("7.00"), reason="low") is True
    assert Notification.objects.filter(customer=customer, kind="autopay_succeeded").count() == 9


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_job_runs_charge_once(currencies, customer, sandbox_card):
    from .factories import GatewayConfigFactory

    GatewayConfigFactory(code="sandbox")
    customer.low_balance_threshold = Decimal("30.00")
    customer.save()
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(), monthly_limit=Decimal("500.00"))
    counts, _errors = run_concurrently(services.card_auto_top_ups_run, [()] * 2)

    assert sorted(counts) == [0, 1]
    assert AutopayCharge.objects.count() == 1
    assert Payment.objects.count() == 1
    assert balance_of(customer) == Decimal("30.00")


@pytest.mark.django_db
def test_job_covers_open_renewal_invoices_plus_the_threshold(gateways_on, customer, sandbox_card, make_invoice, fund):
    customer.low_balance_threshold = Decimal("20.00")
    customer.save()
    fund(customer, "5.00")
    make_invoice(customer, "30.00", kind=Invoice.Kind.RENEWAL)
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(), monthly_limit=Decimal("100"))

    assert services.card_auto_top_ups_run() == 1

    assert AutopayCharge.objects.get().amount == Decimal("45.00")  # 20 threshold + 30 renewal - 5 balance


@pytest.mark.django_db
def test_nothing_is_charged_when_the_balance_is_healthy_or_autopay_is_off(gateways_on, customer, sandbox_card, fund):
    customer.low_balance_threshold = Decimal("20.00")
    customer.save()
    fund(customer, "25.00")
    method = sandbox_card()
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=method, monthly_limit=Decimal("100"))
    assert services.card_auto_top_ups_run() == 0
    services.card_auto_top_up_configure(customer=customer, enabled=False, method=method, monthly_limit=Decimal("100"))
    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("10"), reason="x") is False
    assert not AutopayCharge.objects.exists()


@pytest.mark.django_db
def test_declined_card_fails_notifies_and_does_not_use_the_cap(gateways_on, customer, sandbox_card):
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(behaviour="decline"), monthly_limit=Decimal("50"))

    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("10"), reason="low") is False

    charge = AutopayCharge.objects.get()
    assert charge.status == "failed" and charge.failure_message == "Your card was declined."
    assert PaymentAttempt.objects.get(purpose="autopay").status == "failed"
    assert not Payment.objects.exists()
    notice = Notification.objects.get(customer=customer, kind="autopay_failed")
    assert "declined" in notice.body_text
    assert selectors.card_auto_top_up_month_used(customer=customer, today=charge.day) == 0


@pytest.mark.django_db
def test_pending_card_counts_toward_the_cap_until_its_webhook_arrives(gateways_on, customer, sandbox_card):
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(behaviour="pending"), monthly_limit=Decimal("50"))

    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("40"), reason="low") is True

    charge = AutopayCharge.objects.get()
    assert charge.status == "pending" and not Payment.objects.exists()
    assert selectors.card_auto_top_up_month_used(customer=customer, today=charge.day) == Decimal("40")


@pytest.mark.django_db
def test_removing_the_card_switches_autopay_off(gateways_on, customer, sandbox_card):
    method = sandbox_card()
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=method, monthly_limit=Decimal("50"))
    services.method_remove(method=method)
    assert customer.autopay.__class__.objects.get(customer=customer).enabled is False
    assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("10"), reason="x") is False


@pytest.mark.django_db
def test_monthly_cap_follows_the_providers_month_over_month_and_year_ends(gateways_on, customer, sandbox_card, settings):
    """Cap 50.00. Provider in Amsterdam: 2027-01-31 23:30 UTC is already Feb 1 there, so the second
    top-up of 40.00 is February's and not cut to January's remaining 10.00; the year change likewise."""
    settings.TIME_ZONE = "Europe/Amsterdam"
    services.card_auto_top_up_configure(customer=customer, enabled=True, method=sandbox_card(), monthly_limit=Decimal("50.00"))

    def topup(moment):
        with time_machine.travel(moment, tick=False):
            assert services.card_auto_top_up_charge(customer=customer, needed_amount=Decimal("40.00"), reason="low")
        return AutopayCharge.objects.order_by("-pk").values_list("day", "amount").first()

    from datetime import date

    assert topup(datetime(2027, 1, 31, 22, 0, tzinfo=dt_timezone.utc)) == (date(2027, 1, 31), Decimal("40.00"))
    assert topup(datetime(2027, 1, 31, 23, 30, tzinfo=dt_timezone.utc)) == (date(2027, 2, 1), Decimal("40.00"))
    assert topup(datetime(2027, 12, 31, 22, 30, tzinfo=dt_timezone.utc)) == (date(2027, 12, 31), Decimal("40.00"))
    assert topup(datetime(2027, 12, 31, 23, 0, 1, tzinfo=dt_timezone.utc)) == (date(2028, 1, 1), Decimal("40.00"))
    # Within the same provider month the cap holds: 10.00 of January 2028 is left.
    assert topup(datetime(2028, 1, 2, 9, 0, tzinfo=dt_timezone.utc)) == (date(2028, 1, 2), Decimal("10.00"))
