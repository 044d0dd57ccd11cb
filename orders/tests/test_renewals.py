"""Auto-renewal: concurrency, crash recovery, insufficient funds through the whole lifecycle."""
import io
import threading
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from accounts.tests.factories import UserFactory
from billing.models import Invoice
from billing.selectors import balance_of
from billing.tests.factories import make_currencies
from notifications.models import Notification
from orders.models import IpAddress, Order, OrderRenewal
from orders.services import lifecycle, placing, renewal_batch, renewing
from orders.services.cancelling import order_cancel, order_set_auto_renew

from .factories import PlanFactory

T0 = datetime(2026, 1, 31, 10, 0, tzinfo=dt_timezone.utc)


def active_orders(customers, plan, per_customer, now):
    """Active orders in their first month, expiring `now` (created directly: only renewals are under test)."""
    start = now - timedelta(days=31)
    Order.objects.bulk_create(
        Order(customer=customer, plan=plan, period_months=1, price=Decimal("10.00"), currency="EUR",
              status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip=f"192.0.2.{n}",
              anchor_at=start, anchor_months=1, period_started_at=start, expires_at=now, current_period=1)
        for customer in customers for n in range(per_customer)
    )
    return list(Order.objects.filter(customer__in=customers))


def fund(customer, amount):
    from billing.services.payments import payment_record

    payment_record(idempotency_key=f"fund:{customer.pk}:{amount}:{balance_of(customer)}", customer=customer,
                   amount=Decimal(amount), currency=customer.currency, method="bank_transfer")


def assert_renewed_exactly_once(orders):
    ids = [o.pk for o in orders]
    assert OrderRenewal.objects.filter(order_id__in=ids).count() == len(ids)
    assert OrderRenewal.objects.filter(order_id__in=ids, period=2, status=OrderRenewal.Status.PAID).count() == len(ids)
    assert Order.objects.filter(pk__in=ids, current_period=2, status=Order.Status.ACTIVE).count() == len(ids)
    assert Invoice.objects.filter(kind=Invoice.Kind.RENEWAL, status=Invoice.Status.PAID).count() == len(ids)
    for order in Order.objects.filter(pk__in=ids):
        assert order.expires_at == order.anchor_at + (order.expires_at - order.anchor_at)
    call_command("audit_ledger")


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_the_same_moment_charge_every_order_exactly_once(caplog):
    make_currencies()
    customers = [UserFactory().customer for _ in range(50)]
    for customer in customers:
        fund(customer, "100.00")  # 10 orders × 10.00 renewal
    plan = PlanFactory()
    orders = active_orders(customers, plan, per_customer=10, now=T0)
    assert len(orders) == 500
    barrier = threading.Barrier(2)
    summaries, failures = [], []

    def run():
        try:
            barrier.wait()
            with time_machine.travel(T0, tick=True):
                summaries.append(renewal_batch.renewals_run(chunk_size=25))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert "renewing them one by one" not in caplog.text  # the set-based path did it all
    assert sum(s.renewed for s in summaries) == 500
    assert all(s.claimed < 500 or s.renewed for s in summaries)
    assert_renewed_exactly_once(orders)
    for customer in customers:
        assert balance_of(customer) == Decimal("0.00")
    # A third run later finds nothing more to charge for this period.
    with time_machine.travel(T0, tick=False):
        assert renewal_batch.renewals_run().renewed == 0


class SimulatedKill(BaseException):
    """Not an Exception: like SIGKILL, nothing in the run may swallow it."""


@pytest.mark.django_db(transaction=True)
def test_run_killed_half_way_is_completed_by_the_next_run():
    make_currencies()
    customers = [UserFactory().customer for _ in range(10)]
    for customer in customers:
        fund(customer, "100.00")
    plan = PlanFactory()
    orders = active_orders(customers, plan, per_customer=10, now=T0)
    seen = []

    def kill_at_order_50(order):
        seen.append(order.pk)
        if len(seen) == 50:
            raise SimulatedKill

    with time_machine.travel(T0, tick=False):
        with pytest.raises(SimulatedKill):
            renewal_batch.renewals_run(chunk_size=30, on_order=kill_at_order_50)
        renewed_before = OrderRenewal.objects.filter(status=OrderRenewal.Status.PAID).count()
        assert 0 < renewed_before < 100  # whole chunks before the kill committed, the killed one did not
        summary = renewal_batch.renewals_run(chunk_size=30)
    assert summary.renewed == 100 - renewed_before
    assert_renewed_exactly_once(orders)


@pytest.mark.django_db
def test_insufficient_funds_follows_the_lifecycle_on_a_frozen_clock(customer, currencies, fund):
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options={}, idempotency_key="x").order
    expires = order.expires_at
    assert expires == datetime(2026, 2, 28, 10, 0, tzinfo=dt_timezone.utc)  # Jan 31 + 1 month
    ip = order.ip

    def notices(kind):
        return Notification.objects.filter(customer=customer, kind=kind).count()

    with time_machine.travel(expires - timedelta(hours=12), tick=False):
        first = renewal_batch.renewals_run()
        second = renewal_batch.renewals_run()
    assert (first.unpaid, second.unpaid, first.renewed + second.renewed) == (1, 1, 0)
    assert balance_of(customer) == Decimal("0.00")
    renewal = OrderRenewal.objects.get(order=order)
    assert renewal.status == OrderRenewal.Status.PENDING
    assert Invoice.objects.get(pk=renewal.invoice_id).status == Invoice.Status.UNPAID
    assert Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).count() == 1
    assert notices("renewal_failed") == 1
    assert Notification.objects.get(kind="renewal_failed").link == f"/billing/invoices/{renewal.invoice_id}/"

    with time_machine.travel(expires + timedelta(hours=1), tick=False):
        lifecycle.orders_lifecycle_run()
        renewal_batch.renewals_run()
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED and notices("renewal_failed") == 1

    with time_machine.travel(expires + timedelta(days=2), tick=False):
        lifecycle.orders_lifecycle_run()
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED  # still within the 3-day grace period

    with time_machine.travel(expires + timedelta(days=3, hours=1), tick=False):
        lifecycle.orders_lifecycle_run()
        lifecycle.orders_lifecycle_run()
    order.refresh_from_db()
    assert order.status == Order.Status.SUSPENDED and notices("service_suspended") == 1

    with time_machine.travel(expires + timedelta(days=17, hours=1), tick=False):
        lifecycle.orders_lifecycle_run()
        lifecycle.orders_lifecycle_run()
    order.refresh_from_db()
    assert order.status == Order.Status.TERMINATED and notices("service_terminated") == 1
    assert not IpAddress.objects.filter(address=ip, order__isnull=False).exists()
    assert Invoice.objects.get(pk=renewal.invoice_id).status == Invoice.Status.CANCELLED
    assert balance_of(customer) == Decimal("0.00")
    assert list(order.events.filter(source="system").values_list("action", flat=True).order_by("pk")) == [
        "placed", "activated", "expired", "suspended", "terminated"]


@pytest.mark.django_db
def test_topping_up_a_suspended_order_renews_it_from_today(customer, currencies, fund, django_capture_on_commit_callbacks):
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options={}, idempotency_key="x").order
    now = order.expires_at + timedelta(days=5)
    with time_machine.travel(now, tick=False):
        renewal_batch.renewals_run()
        lifecycle.orders_lifecycle_run()
        lifecycle.orders_lifecycle_run()
        order.refresh_from_db()
        assert order.status == Order.Status.SUSPENDED
        with django_capture_on_commit_callbacks(execute=True):
            fund(customer, "10.00")
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE
    assert order.expires_at == now + (datetime(2026, 4, 5, tzinfo=dt_timezone.utc) - datetime(2026, 3, 5, tzinfo=dt_timezone.utc))


@pytest.mark.django_db
def test_expiring_notices_once_each_at_7_3_and_1_days(customer, currencies, fund):
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options={}, idempotency_key="x").order
        order_set_auto_renew(order=order, auto_renew=False, actor=None)
    for days_before in (10, 7, 6, 3, 3, 1, 1):
        with time_machine.travel(order.expires_at - timedelta(days=days_before) + timedelta(minutes=1), tick=False):
            lifecycle.orders_lifecycle_run()
    sent = list(Notification.objects.filter(kind="service_expiring").order_by("pk").values_list("context__days_left", flat=True))
    assert sent == ["7", "3", "1"]


@pytest.mark.django_db
def test_auto_renew_off_or_cancel_at_period_end_is_not_renewed(customer, currencies, fund):
    fund(customer, "100.00")
    customer.auto_renew_default = False
    customer.save()
    with time_machine.travel(T0, tick=False):
        plan = PlanFactory()
        follows_default = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="a").order
        explicit_on = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="b").order
        order_set_auto_renew(order=explicit_on, auto_renew=True, actor=None)
        cancelling = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="c").order
        order_set_auto_renew(order=cancelling, auto_renew=True, actor=None)
        order_cancel(order=cancelling, actor=None)
    with time_machine.travel(explicit_on.expires_at - timedelta(hours=1), tick=False):
        summary = renewal_batch.renewals_run()
    assert summary.renewed == 1
    assert list(OrderRenewal.objects.values_list("order_id", flat=True)) == [explicit_on.pk]


@pytest.mark.django_db
def test_renew_services_command_prints_progress_and_a_summary(customer, currencies, fund):
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options={}, idempotency_key="x").order
    fund(customer, "10.00")
    out = io.StringIO()
    with time_machine.travel(order.expires_at - timedelta(hours=2), tick=False):
        call_command("renew_services", stdout=out)
        call_command("orders_lifecycle", stdout=io.StringIO())
    text = out.getvalue()
    assert "1 order(s) due for auto-renewal." in text and "1/1" in text
    assert "Auto-renewal: claimed 1, renewed 1, left unpaid 0, errors 0" in text
    order.refresh_from_db()
    assert order.current_period == 2


@pytest.mark.django_db
def test_manual_renewal_replaces_a_pending_renewal_invoice_of_the_same_period(customer, currencies, fund):
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options={}, idempotency_key="x").order
    with time_machine.travel(order.expires_at - timedelta(hours=2), tick=False):
        renewal_batch.renewals_run()  # no funds: pending renewal with an unpaid invoice for period 2
        first = OrderRenewal.objects.get(order=order)
        result = renewing.order_renew(order=order, periods=3, actor=None)
    assert not result.paid and result.renewal.periods == 3 and result.invoice.total == Decimal("30.00")
    assert Invoice.objects.get(pk=first.invoice_id).status == Invoice.Status.CANCELLED
    assert OrderRenewal.objects.filter(order=order).count() == 1


@pytest.mark.django_db
def test_auto_payment_is_asked_before_giving_up(customer, currencies, fund, django_capture_on_commit_callbacks):
    from billing.gateways import services as gateway_services
    from billing.gateways.models import SandboxCard
    from billing.gateways.tests.factories import GatewayConfigFactory, SavedPaymentMethodFactory

    GatewayConfigFactory(code="sandbox")
    SandboxCard.objects.create(id="card_orders", customer_ref=str(customer.pk), brand="visa", last4="4242",
                               exp_month=12, exp_year=2031, behaviour="succeed")
    method = SavedPaymentMethodFactory(customer=customer, token="card_orders", is_default=True)
    gateway_services.card_auto_top_up_configure(customer=customer, enabled=True, method=method, monthly_limit=Decimal("100.00"))
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options={}, idempotency_key="x").order
    with time_machine.travel(order.expires_at - timedelta(hours=2), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            summary = renewal_batch.renewals_run()
    assert summary.unpaid == 1  # the balance alone did not cover it ...
    order.refresh_from_db()
    assert order.current_period == 2  # ... the saved card topped it up and billing paid the renewal
    assert not Notification.objects.filter(kind="renewal_failed").exists()
    assert balance_of(customer) >= Decimal("0.00")



def _in_background(target):
    """Run `target(inside, release)` in a thread until it sets `inside`; returns (thread, release, failures)."""
    inside, release, failures = threading.Event(), threading.Event(), []

    def run():
        try:
            target(inside, release)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            failures.append(error)
            inside.set()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(60)
    return thread, release, failures


def _renew_without_waiting():
    """A renewal run that fails (lock_timeout) instead of queueing behind a held row."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '20s'")
        with time_machine.travel(T0, tick=True):
            return renewal_batch.renewals_run(chunk_size=5)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")


@pytest.mark.django_db(transaction=True)
def test_a_worker_does_not_queue_behind_another_workers_or_a_payments_provider_accounts():
    """Another batch worker in its write step holds its slot's provider accounts, a web payment holds
    the shared ones: a renewal run still renews everything (its own slot of batch sub-accounts)."""
    from django.db import transaction

    from billing.models import LedgerAccount
    from billing.services.ledger import batch_provider_accounts_lock, provider_account

    make_currencies()
    customers = [UserFactory().customer for _ in range(4)]
    for customer in customers:
        fund(customer, "100.00")
    orders = active_orders(customers, PlanFactory(), per_customer=5, now=T0)
    kinds = (LedgerAccount.Kind.HOLDING, LedgerAccount.Kind.REVENUE, LedgerAccount.Kind.TAX)
    shared = [provider_account(kind=kind, currency="EUR").pk for kind in kinds]

    def hold(inside, release):
        with transaction.atomic():
            batch_provider_accounts_lock(kinds=kinds, currencies={"EUR"})
            list(LedgerAccount.objects.select_for_update().filter(pk__in=shared))
            inside.set()
            release.wait(60)

    thread, release, failures = _in_background(hold)
    try:
        summary = _renew_without_waiting()
    finally:
        release.set()
        thread.join()
    assert not failures
    assert summary.renewed == 20
    assert_renewed_exactly_once(orders)


@pytest.mark.django_db(transaction=True)
def test_two_workers_overlap_instead_of_queueing():
    """While one worker is inside its chunk, a second renews every other chunk; each order once."""
    make_currencies()
    customers = [UserFactory().customer for _ in range(4)]
    for customer in customers:
        fund(customer, "100.00")
    orders = active_orders(customers, PlanFactory(), per_customer=5, now=T0)
    summaries = []

    def first_worker(inside, release):
        def pause(order):
            if not inside.is_set():  # inside the first chunk: its orders are claimed
                inside.set()
                release.wait(60)

        with time_machine.travel(T0, tick=True):
            summaries.append(renewal_batch.renewals_run(chunk_size=5, on_order=pause))

    thread, release, failures = _in_background(first_worker)
    try:
        second = _renew_without_waiting()
    finally:
        release.set()
        thread.join()
    assert not failures
    assert second.renewed == 15 and summaries[0].renewed == 5
    assert_renewed_exactly_once(orders)
