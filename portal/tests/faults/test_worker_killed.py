"""kill -9 a Celery worker (the whole worker, as when its host dies) or only its pool process in the
middle of a renewal batch: the interrupted task is picked up again within 30 s and every order is
renewed exactly once (acks_late + reject_on_worker_lost + the Redis visibility/restore settings)."""
import os
import signal
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import UserFactory
from billing.models import Invoice
from billing.selectors import balance_of
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import Order, OrderRenewal
from orders.tasks import renew_services_task
from orders.tests.factories import PlanFactory
from portal.celery import app as celery_app

from .conftest import app_env, database_url, pool_children, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow_fault]

CUSTOMERS, PER_CUSTOMER, CHUNK = 20, 10, 10
PICKUP_LIMIT = 30  # seconds from the kill until renewals progress again


@pytest.fixture
def slow_renewal_chunks():
    """Every statement inserting renewal rows sleeps 0.25 s, so a 200-order batch takes several seconds
    whatever the renewal code's shape, and a kill lands in the middle of it."""
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE OR REPLACE FUNCTION faults_slow_statement() RETURNS trigger AS $$
            BEGIN PERFORM pg_sleep(0.25); RETURN NULL; END $$ LANGUAGE plpgsql;
            DROP TRIGGER IF EXISTS faults_slow_renewals ON orders_orderrenewal;
            CREATE TRIGGER faults_slow_renewals AFTER INSERT ON orders_orderrenewal
                FOR EACH STATEMENT EXECUTE FUNCTION faults_slow_statement();
        """)
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS faults_slow_renewals ON orders_orderrenewal")


def due_orders() -> list[Order]:
    make_currencies()
    now = timezone.now()
    start = now - timedelta(days=31)
    plan = PlanFactory()
    customers = [UserFactory().customer for _ in range(CUSTOMERS)]
    for customer in customers:
        payment_record(idempotency_key=f"faults:fund:{customer.pk}", customer=customer, amount=Decimal("100.00"),
                       currency="EUR", method="bank_transfer")
    Order.objects.bulk_create(
        Order(customer=customer, plan=plan, period_months=1, price=Decimal("10.00"), currency="EUR", auto_renew=True,
              status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip=f"192.0.2.{n}",
              anchor_at=start, anchor_months=1, period_started_at=start, expires_at=now, current_period=1)
        for customer in customers for n in range(PER_CUSTOMER))
    return list(Order.objects.filter(customer__in=customers))


def renewed() -> int:
    return OrderRenewal.objects.filter(status=OrderRenewal.Status.PAID).count()


@pytest.mark.parametrize("victim", ["worker", "pool_child"])
def test_killed_worker_mid_batch_every_order_renewed_exactly_once(victim, throwaway_redis, processes, slow_renewal_chunks):
    orders = due_orders()
    total = len(orders)
    env = app_env(database=database_url(), redis=throwaway_redis.url, ORDERS_JOB_CHUNK_SIZE=CHUNK)
    worker = processes.worker("worker1", env)
    with celery_app.connection_for_write(throwaway_redis.url) as conn:
        renew_services_task.apply_async(connection=conn)

    wait_for(lambda: renewed() >= 3 * CHUNK, 60, "the batch to be under way")
    done_at_kill = renewed()
    assert done_at_kill < total, "the batch finished before the kill: make the chunks slower"
    if victim == "worker":
        processes.kill_group(worker)  # the main process and its pool: nothing can requeue the task
        killed_at = time.monotonic()
        processes.worker("worker2", env)
    else:
        child = wait_for(lambda: pool_children(worker.pid), 10, "the pool process")[0]
        os.kill(child, signal.SIGKILL)  # the main process survives, rejects the task and respawns a child
        killed_at = time.monotonic()
    time.sleep(0.5)
    stalled_at = renewed()  # a chunk in flight at the kill rolled back; nothing moves until redelivery

    wait_for(lambda: renewed() > stalled_at, PICKUP_LIMIT + 5, "the interrupted batch to resume", interval=0.2)
    assert time.monotonic() - killed_at <= PICKUP_LIMIT
    wait_for(lambda: renewed() == total, 90, "the batch to finish", interval=0.5)

    assert OrderRenewal.objects.count() == total
    assert OrderRenewal.objects.filter(period=2, status=OrderRenewal.Status.PAID).count() == total
    assert Order.objects.filter(current_period=2).count() == total
    assert Invoice.objects.filter(kind=Invoice.Kind.RENEWAL, status=Invoice.Status.PAID).count() == total
    for customer_id in {o.customer_id for o in orders}:
        assert balance_of(Order.objects.filter(customer_id=customer_id).first().customer) == Decimal("0.00")
    call_command("audit_ledger")
