"""A double click: the top-up, order, renew and pay forms posted twice at the same moment (two real
requests in parallel transactions, same session, same form data) create one invoice/order/charge."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from billing.models import Invoice, LedgerTransaction
from billing.selectors import balance_of
from billing.services.invoices import LineInput, invoice_issue
from billing.services.payments import payment_record
from billing.tests.concurrency import run_concurrently
from billing.tests.factories import make_currencies
from orders.models import Order, OrderRenewal
from orders.tests.factories import PlanFactory

from .conftest import order_form_data

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner():
    make_currencies()
    user = UserFactory()
    payment_record(idempotency_key="faults:double:fund", customer=user.customer, amount=Decimal("100.00"),
                   currency="EUR", method="bank_transfer")
    return user


def clients(user, n=2) -> list[Client]:
    first = Client()
    first.force_login(user)
    others = []
    for _ in range(n - 1):
        other = Client()
        other.cookies = first.cookies  # the same browser session clicking twice
        others.append(other)
    return [first, *others]


def twice_at_once(user, path: str, data: dict) -> list[int]:
    """POST `data` to `path` from two threads released together; returns the status codes."""
    statuses, errors = run_concurrently(lambda client: client.post(path, data).status_code,
                                        [(client,) for client in clients(user)])
    assert not errors
    assert len(statuses) == 2 and all(status in (200, 302) for status in statuses), statuses
    return statuses


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def test_top_up_form_twice_creates_one_invoice(owner):
    page = clients(owner, 1)[0].get("/billing/").content.decode()
    twice_at_once(owner, "/billing/topup/", {"amount": "25.00", "currency": "EUR", "request_key": hidden(page, "request_key")})
    assert Invoice.objects.filter(customer=owner.customer, kind=Invoice.Kind.ADVANCE).count() == 1


def test_order_form_twice_places_one_order_and_charges_once(owner):
    plan = PlanFactory()
    client = clients(owner, 1)[0]
    key = hidden(client.get(f"/orders/new/{plan.pk}/").content.decode(), "request_key")
    twice_at_once(owner, f"/orders/new/{plan.pk}/confirm/", order_form_data(plan, key))
    assert Order.objects.filter(customer=owner.customer).count() == 1
    assert Invoice.objects.filter(customer=owner.customer, kind=Invoice.Kind.ORDER).count() == 1
    assert LedgerTransaction.objects.filter(kind="charge", invoice__customer=owner.customer).count() == 1
    assert balance_of(owner.customer) == Decimal("90.00")
    call_command("audit_ledger")


def test_renew_form_twice_renews_one_period(owner):
    now = timezone.now()
    order = Order.objects.create(
        customer=owner.customer, plan=PlanFactory(), period_months=1, price=Decimal("10.00"), currency="EUR",
        status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip="192.0.2.10", anchor_at=now - timedelta(days=20),
        anchor_months=1, period_started_at=now - timedelta(days=20), expires_at=now + timedelta(days=10), current_period=1)
    page = clients(owner, 1)[0].get(f"/orders/{order.pk}/renew/").content.decode()
    twice_at_once(owner, f"/orders/{order.pk}/renew/", {"periods": 1, "period": hidden(page, "period")})
    order.refresh_from_db()
    assert order.current_period == 2
    assert OrderRenewal.objects.filter(order=order).count() == 1
    assert balance_of(owner.customer) == Decimal("90.00")
    call_command("audit_ledger")


def test_pay_form_twice_charges_once(owner):
    invoice = invoice_issue(customer=owner.customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS Start", quantity=1, unit_price=Decimal("30.00"))])
    twice_at_once(owner, f"/billing/invoices/{invoice.pk}/pay-from-balance/", {})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert LedgerTransaction.objects.filter(kind="charge", invoice=invoice).count() == 1
    assert balance_of(owner.customer) == Decimal("70.00")
    call_command("audit_ledger")
