import json
import time
from decimal import Decimal

import pytest

from billing.gateways import sandbox_provider
from billing.gateways.models import PaymentAttempt
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue

from .factories import GatewayConfigFactory


@pytest.fixture
def gateways_on(currencies):
    """Sandbox and bank transfer enabled for every currency and country."""
    return [GatewayConfigFactory(code="sandbox", position=1), GatewayConfigFactory(code="bank_transfer", position=3)]


@pytest.fixture
def make_invoice(currencies):
    def make(customer, amount="10.00", kind=Invoice.Kind.ORDER, currency=None):
        return invoice_issue(
            customer=customer, kind=kind, currency=currency,
            lines=[LineInput(description="VPS Start", quantity=1, unit_price=Decimal(amount))],
        )

    return make


@pytest.fixture
def sandbox_attempt(gateways_on, customer, make_invoice):
    """An attempt opened for an invoice, as the pay page does (no HTTP involved)."""

    def make(amount="10.00", **kwargs):
        invoice = make_invoice(customer, amount)
        return PaymentAttempt.objects.create(customer=customer, invoice=invoice, gateway="sandbox",
                                             amount=invoice.total, currency=invoice.currency, status="pending", **kwargs)

    return make


def sandbox_event(attempt, *, event_type="payment.succeeded", transaction="txn_test1", amount=None, currency=None,
                  event_id="evt_test1", card=None) -> bytes:
    payload = {"id": event_id, "type": event_type, "created": int(time.time()), "data": {
        "reference": str(attempt.reference), "transaction": transaction,
        "amount": str(attempt.amount if amount is None else amount), "currency": currency or attempt.currency,
        "card": card,
    }}
    return json.dumps(payload).encode()


def signed_headers(body: bytes, *, secret=None, timestamp=None) -> dict:
    return {sandbox_provider.SIGNATURE_HEADER: sandbox_provider.sign(body.decode(), secret=secret, timestamp=timestamp)}


@pytest.fixture(autouse=True)
def webhooks_go_nowhere(settings):
    """Sandbox webhooks posted after commit go to a closed port unless a test points them at live_server
    (never at a demo someone runs on :8000)."""
    settings.PORTAL_BASE_URL = "http://127.0.0.1:9"
    # Tasks queued after commit (notification mail) run in-process instead of reaching a shared broker.
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def sandbox_card(customer):
    """A card saved at the sandbox provider and in the portal, as after a "save card" payment."""
    from billing.gateways.models import SandboxCard

    from .factories import SavedPaymentMethodFactory

    def make(behaviour="succeed", token="card_autopay"):
        SandboxCard.objects.create(id=token, customer_ref=str(customer.pk), brand="visa", last4="4242", exp_month=12,
                                   exp_year=2031, behaviour=behaviour)
        return SavedPaymentMethodFactory(customer=customer, token=token, is_default=True)

    return make
