"""A plan change reprices pending renewals (issue 15, item 2): an upgrade paid while the renewal
invoice is open must not leave the next period on sale at the old plan's price."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from billing.models import Invoice
from billing.selectors import balance_of
from billing.services.invoices import invoice_apply_balance
from billing.services.payments import payment_record
from orders.models import OrderRenewal
from orders.services import placing, plan_change, renewal_batch

from .factories import PlanFactory, order_options

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 4, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def plans():
    standard = PlanFactory(name="VPS Standard", prices={(1, "EUR"): "12.00"})
    pro = PlanFactory(name="VPS Pro", product_type=standard.product_type, prices={(1, "EUR"): "24.00"})
    return standard, pro


def standard_order_with_open_renewal(customer, fund, standard):
    """Standard (12/month) placed 4 Nov; the renewal job issues the 4 Dec renewal 23 h before expiry
    and the empty balance leaves it unpaid."""
    fund(customer, "12.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=standard, period_months=1,
                                    options=order_options(standard), idempotency_key="std").order
    order.refresh_from_db()
    with time_machine.travel(order.expires_at - timedelta(hours=23), tick=False):
        renewal_batch.renewals_run()
    renewal = OrderRenewal.objects.get(order=order, status=OrderRenewal.Status.PENDING)
    assert Invoice.objects.get(pk=renewal.invoice_id).total == Decimal("12.00")
    return order, renewal


def test_upgrade_paid_while_the_renewal_is_unpaid_reissues_the_renewal_at_the_new_price(
        customer, fund, plans, django_capture_on_commit_callbacks):
    standard, pro = plans
    order, old_renewal = standard_order_with_open_renewal(customer, fund, standard)
    with time_machine.travel(order.expires_at - timedelta(hours=22), tick=False):
        fund(customer, "0.40")
        quote = plan_change.plan_change_quote(order=order, plan=pro)
        assert quote.proration.amount == Decimal("0.40")  # the last of 30 days: 12 / 30
        with django_capture_on_commit_callbacks(execute=True):
            result = plan_change.order_change_plan(order=order, plan=pro, actor=None, expected_amount=Decimal("0.40"))
    assert result.paid
    order.refresh_from_db()
    assert order.plan_id == pro.pk and order.price == Decimal("24.00")
    assert Invoice.objects.get(pk=old_renewal.invoice_id).status == Invoice.Status.CANCELLED
    renewal = OrderRenewal.objects.get(order=order, status=OrderRenewal.Status.PENDING)
    assert renewal.period == old_renewal.period and renewal.plan_id == pro.pk and renewal.amount == Decimal("24.00")
    new_invoice = Invoice.objects.get(pk=renewal.invoice_id)
    assert new_invoice.total == Decimal("24.00") and new_invoice.status == Invoice.Status.UNPAID

    # The old 12.00 is no longer enough to renew: a month of Pro costs 24.00.
    with time_machine.travel(order.expires_at - timedelta(hours=12), tick=False):
        fund(customer, "12.00")
        renewal_batch.renewals_run()
    order.refresh_from_db()
    assert order.current_period == 1
    with time_machine.travel(order.expires_at - timedelta(hours=6), tick=False):
        fund(customer, "12.00")
        renewal_batch.renewals_run()
    order.refresh_from_db()
    assert order.current_period == 2 and balance_of(customer) == Decimal("0.00")
    call_command("audit_ledger")


def test_money_applied_to_the_stale_renewal_returns_to_the_balance(customer, fund, plans,
                                                                   django_capture_on_commit_callbacks):
    standard, pro = plans
    order, old_renewal = standard_order_with_open_renewal(customer, fund, standard)
    with time_machine.travel(order.expires_at - timedelta(hours=22), tick=False):
        fund(customer, "5.00")
        invoice_apply_balance(invoice=Invoice.objects.get(pk=old_renewal.invoice_id))
        change = plan_change.order_change_plan(order=order, plan=pro, actor=None)
        assert not change.paid
        with django_capture_on_commit_callbacks(execute=True):  # the upgrade is paid by bank transfer
            payment_record(idempotency_key="bank:upgrade", customer=customer, amount=change.invoice.total,
                           currency="EUR", method="bank_transfer", invoice=change.invoice)
    order.refresh_from_db()
    assert order.plan_id == pro.pk
    assert Invoice.objects.get(pk=old_renewal.invoice_id).status == Invoice.Status.CANCELLED
    renewal = OrderRenewal.objects.get(order=order, status=OrderRenewal.Status.PENDING)
    assert renewal.amount == Decimal("24.00")
    assert balance_of(customer) == Decimal("5.00")  # what was applied to the old invoice is back
    call_command("audit_ledger")


def test_scheduling_a_downgrade_reprices_the_issued_renewal(customer, fund, plans):
    standard, pro = plans
    fund(customer, "24.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=pro, period_months=1,
                                    options=order_options(pro), idempotency_key="pro").order
    order.refresh_from_db()
    with time_machine.travel(order.expires_at - timedelta(hours=23), tick=False):
        renewal_batch.renewals_run()
        old = OrderRenewal.objects.get(order=order, status=OrderRenewal.Status.PENDING)
        assert old.amount == Decimal("24.00")
        plan_change.order_change_plan(order=order, plan=standard, actor=None)
    renewal = OrderRenewal.objects.get(order=order, status=OrderRenewal.Status.PENDING)
    assert renewal.plan_id == standard.pk and renewal.amount == Decimal("12.00")
    assert Invoice.objects.get(pk=old.invoice_id).status == Invoice.Status.CANCELLED
    with time_machine.travel(order.expires_at - timedelta(hours=12), tick=False):
        fund(customer, "12.00")
        renewal_batch.renewals_run()
    order.refresh_from_db()
    assert order.current_period == 2 and order.plan_id == standard.pk
    call_command("audit_ledger")
