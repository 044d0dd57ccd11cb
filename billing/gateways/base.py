"""The gateway interface every payment provider adapter implements.

The portal-side flow is the same for all gateways (services.py): create a `PaymentAttempt`, ask the
gateway to start it (redirect URL or instructions), verify each webhook with the gateway, then credit
through `billing.services.payments.payment_record` keyed on the gateway's own transaction id, so a webhook
delivered any number of times credits once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal


class GatewayError(Exception):
    """The provider refused or could not be reached; the message is safe to show to the customer."""


class WebhookRejected(Exception):
    """A webhook that must not be processed. `result` is a WebhookDelivery.Result value."""

    def __init__(self, result: str, message: str):
        super().__init__(message)
        self.result = result


@dataclass
class MethodDetails:
    """A reusable payment method the gateway tokenised (never a full card number)."""

    token: str
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None
    kind: str = "card"
    gateway_customer_id: str = ""


@dataclass
class StartResult:
    redirect_url: str = ""
    external_id: str = ""
    instructions: dict = field(default_factory=dict)


@dataclass
class ChargeResult:
    status: str  # "succeeded" | "pending" | "failed"
    transaction_id: str = ""
    failure_message: str = ""


@dataclass
class GatewayEvent:
    """A verified webhook event in the portal's words.

    kind: "succeeded" | "failed" | "pending" | "refunded" | "ignored".
    """

    event_id: str
    event_type: str
    kind: str
    reference: str = ""
    transaction_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    method: MethodDetails | None = None
    failure_message: str = ""


class Gateway(ABC):
    code: str = ""
    name = ""
    redirects = True  # False: the gateway shows instructions instead (bank transfer)
    supports_saved_methods = False

    def is_configured(self) -> bool:
        return True

    def supported_currencies(self) -> set[str] | None:
        """None: any currency."""
        return None

    @abstractmethod
    def start_payment(self, *, attempt, description: str, success_url: str, cancel_url: str) -> StartResult:
        """Open a payment (or, for `attempt.purpose == "setup"`, a save-a-card session)."""

    def parse_webhook(self, *, body: bytes, headers) -> list[GatewayEvent]:
        """Verify the signature and timestamp, then translate the payload; raise WebhookRejected."""
        raise WebhookRejected("malformed", "This gateway does not receive webhooks.")

    def refund(self, *, attempt, amount: Decimal, idempotency_key: str) -> str:
        """Send `amount` back; `idempotency_key` is the portal's stable refund key (a retry sends once)."""
        raise GatewayError("This gateway cannot refund automatically.")

    def charge_saved_method(self, *, attempt, method) -> ChargeResult:
        raise GatewayError("This gateway cannot charge saved methods.")

    def delete_saved_method(self, *, method) -> None:
        """Detach the token at the provider; the local row is deleted by the caller."""
