"""A webhook storm: the same 200 sandbox events sent 5 times each, in parallel, to gunicorn (several
processes, so the duplicates really race in PostgreSQL): each payment is credited exactly once."""
import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.tests.factories import UserFactory
from billing.gateways.models import PaymentAttempt, WebhookDelivery
from billing.gateways.tests.conftest import sandbox_event, signed_headers
from billing.gateways.tests.factories import GatewayConfigFactory
from billing.models import Invoice, Payment
from billing.services.invoices import LineInput, invoice_issue
from billing.tests.factories import make_currencies

from .conftest import Browser, app_env, database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow_fault]

EVENTS, COPIES = 200, 5


def test_same_200_events_five_times_in_parallel_credit_once(processes, throwaway_redis):
    make_currencies()
    GatewayConfigFactory(code="sandbox")
    customers = [UserFactory().customer for _ in range(20)]
    bodies = []
    for n in range(EVENTS):
        customer = customers[n % len(customers)]
        invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ADVANCE,
                                lines=[LineInput(description="Top-up", quantity=1, unit_price=Decimal("12.50"))])
        attempt = PaymentAttempt.objects.create(customer=customer, invoice=invoice, gateway="sandbox", amount=invoice.total,
                                                currency=invoice.currency, status="pending")
        bodies.append(sandbox_event(attempt, transaction=f"txn_storm_{n}", event_id=f"evt_storm_{n}"))
    base = processes.gunicorn("web", app_env(database=database_url(), redis=throwaway_redis.url), workers=3)
    deliveries = [body for body in bodies for _ in range(COPIES)]
    random.Random(11).shuffle(deliveries)

    def deliver(body: bytes):
        headers = {"Content-Type": "application/json", **signed_headers(body)}
        status, text, _headers = Browser(base).request("POST", "/pay/webhooks/sandbox/", body=body, headers=headers)
        return status, text

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(deliver, deliveries))

    assert {status for status, _text in results} == {200}
    assert sorted(text for _status, text in results).count("processed") == EVENTS
    assert Payment.objects.count() == EVENTS
    assert Payment.objects.values("idempotency_key").distinct().count() == EVENTS
    assert Invoice.objects.filter(kind=Invoice.Kind.ADVANCE, status=Invoice.Status.PAID).count() == EVENTS
    assert WebhookDelivery.objects.count() == EVENTS * COPIES
    for customer in customers:
        account = customer.ledger_accounts.get(kind="customer")
        assert account.balance == Decimal("12.50") * (EVENTS // len(customers))
    call_command("audit_ledger")
