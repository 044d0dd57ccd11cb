"""Gateway writes: start payments, apply verified webhooks, saved methods, auto-payment, bank transfers.

Money is credited only through `billing.services.payments.payment_record`, keyed "<gateway>:<transaction id>",
while the PaymentAttempt row lock makes every later delivery of the same event a no-op.
Provider calls (network) happen outside database transactions: the intent is recorded first.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_UP, Decimal

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.selectors import payment_blockers
from core.calendar import provider_today
from accounts.services.activity import activity_record
from billing.models import Invoice, Payment, PaymentRefund
from billing.money import fits_minor_units, format_money, quantize, quantum
from billing.selectors import balance_of
from billing.services.errors import BillingError, PaymentBlocked
from billing.services.invoices import invoice_apply_balance
from billing.services.payers import invoice_payment_gate_check
from billing.services.payments import payment_record
from billing.services.refunds import (
    payment_refund_complete, payment_refund_fail, payment_refund_reserve, payment_refund_sent_by_bank,
)
from notifications.kinds import Kind
from notifications.services import notify

from .base import GatewayError, GatewayEvent, MethodDetails, StartResult, WebhookRejected
from .models import (
    AutopayCharge, AutopaySettings, BankTransferReceipt, GatewayCustomer, PaymentAttempt, SavedPaymentMethod,
    WebhookDelivery,
)
from .registry import get_gateway
from .selectors import (
    attempt_in_flight, card_auto_top_up_is_due, card_auto_top_up_month_used, card_auto_top_up_needed_amount,
    gateway_offered,
)

logger = logging.getLogger(__name__)
Result = WebhookDelivery.Result
Status = PaymentAttempt.Status


class PaymentNotAllowed(Exception):
    """Shown to the customer as is (translated); `blockers` lists profile fields to fix, if any."""

    def __init__(self, message: str, blockers: list[dict] | None = None):
        super().__init__(message)
        self.blockers = blockers or []


# --- starting a payment -----------------------------------------------------------------------------

def in_flight_message(attempt: PaymentAttempt) -> str:
    return _("A payment of %(amount)s for this invoice is being processed. It will show here once the payment "
             "system confirms it; please do not pay again.") % {"amount": format_money(attempt.amount, attempt.currency)}


@dataclass
class PaymentStart:
    attempt: PaymentAttempt | None
    result: StartResult | None
    paid_from_balance: Decimal = Decimal("0")
    invoice_paid: bool = False


def _invoice_payable(*, customer: Customer, invoice: Invoice, use_balance: bool) -> Decimal:
    """The checks every way of paying an invoice online shares (open, the payment gate, no payment in
    flight), then the optional balance part. Returns what the balance paid."""
    if invoice.customer_id != customer.pk or not invoice.is_open:
        raise PaymentNotAllowed(_("This invoice is not awaiting payment."))
    try:
        invoice_payment_gate_check(invoice)  # the customer's profile and the payer chosen on the invoice
    except PaymentBlocked as exc:
        raise PaymentNotAllowed(exc.messages[0], exc.blockers)
    in_flight = attempt_in_flight(invoice)
    if in_flight is not None:
        raise PaymentNotAllowed(in_flight_message(in_flight))
    applied = Decimal("0")
    if use_balance and invoice.kind != Invoice.Kind.ADVANCE:
        try:
            applied = invoice_apply_balance(invoice=invoice)
        except BillingError:
            applied = Decimal("0")
        invoice.refresh_from_db()
    return applied


def payment_start(*, customer: Customer, invoice: Invoice, gateway_code: str, return_url_for, use_balance: bool = False,
                  save_method: bool = False, via_pay_link: bool = False) -> PaymentStart:
    """Pay an open invoice: optionally apply the balance first (partial application), then open a
    gateway payment for what is left. `return_url_for(attempt)` -> (success_url, cancel_url)."""
    applied = _invoice_payable(customer=customer, invoice=invoice, use_balance=use_balance)
    if invoice.status == Invoice.Status.PAID:
        return PaymentStart(attempt=None, result=None, paid_from_balance=applied, invoice_paid=True)
    gateway = get_gateway(gateway_code)
    if gateway is None or not gateway.redirects or not gateway_offered(gateway, currency=invoice.currency, country=customer.country):
        raise PaymentNotAllowed(_("This payment method is not available for your invoice."))
    attempt = PaymentAttempt.objects.create(
        customer=customer, invoice=invoice, gateway=gateway.code, amount=invoice.amount_due, currency=invoice.currency,
        save_method=save_method and gateway.supports_saved_methods, via_pay_link=via_pay_link,
    )
    result = _open_at_gateway(gateway, attempt, _("Invoice %(number)s") % {"number": invoice.number}, return_url_for)
    return PaymentStart(attempt=attempt, result=result, paid_from_balance=applied)


def payment_with_saved_method(*, customer: Customer, invoice: Invoice, method: SavedPaymentMethod,
                              use_balance: bool = False) -> PaymentStart:
    """Pay an open invoice with a card the customer saved earlier, without leaving the portal: the same
    checks as `payment_start`, then an off-session charge (`_charge_saved_method`, which auto-payment
    uses too). The attempt is committed before the gateway is called, so the invoice shows the payment
    in flight and cannot be paid twice while the provider answers."""
    if method.customer_id != customer.pk:
        raise PaymentNotAllowed(_("This payment method is not available."))
    applied = _invoice_payable(customer=customer, invoice=invoice, use_balance=use_balance)
    if invoice.status == Invoice.Status.PAID:
        return PaymentStart(attempt=None, result=None, paid_from_balance=applied, invoice_paid=True)
    gateway = get_gateway(method.gateway)
    if gateway is None or not gateway.supports_saved_methods or not gateway_offered(
            gateway, currency=invoice.currency, country=customer.country):
        raise PaymentNotAllowed(_("This payment method is not available for your invoice."))
    attempt = PaymentAttempt.objects.create(
        customer=customer, invoice=invoice, gateway=gateway.code, amount=invoice.amount_due, currency=invoice.currency,
        saved_method=method, status=Status.PENDING,
    )
    status = _charge_saved_method(gateway, attempt, method)
    attempt.refresh_from_db()
    if status == "failed":
        raise PaymentNotAllowed(attempt.failure_message or _("The card was declined."))
    return PaymentStart(attempt=attempt, result=None, paid_from_balance=applied, invoice_paid=status == "succeeded")


def _charge_saved_method(gateway, attempt: PaymentAttempt, method: SavedPaymentMethod) -> str:
    """Charge a saved method for a committed attempt and record the outcome: "succeeded" (the payment is
    recorded), "pending" (the provider's webhook finishes it) or "failed"."""
    try:
        result = gateway.charge_saved_method(attempt=attempt, method=method)
    except GatewayError as exc:
        attempt_fail(attempt=attempt, message=str(exc))
        return "failed"
    if result.status == "succeeded":
        attempt_succeed(attempt=attempt, transaction_id=result.transaction_id, amount=attempt.amount, currency=attempt.currency)
        return "succeeded"
    if result.status == "pending":
        PaymentAttempt.objects.filter(pk=attempt.pk).update(transaction_id=result.transaction_id)
        return "pending"
    attempt_fail(attempt=attempt, message=result.failure_message or _("The card was declined."))
    return "failed"


def method_setup_start(*, customer: Customer, gateway_code: str, return_url_for) -> PaymentStart:
    """Save a card without paying (Payment methods → Add)."""
    gateway = get_gateway(gateway_code)
    if gateway is None or not gateway.supports_saved_methods or not gateway_offered(
        gateway, currency=customer.currency, country=customer.country
    ):
        raise PaymentNotAllowed(_("This payment method is not available."))
    attempt = PaymentAttempt.objects.create(
        customer=customer, gateway=gateway.code, purpose=PaymentAttempt.Purpose.SETUP, amount=Decimal("0"),
        currency=customer.currency, save_method=True,
    )
    result = _open_at_gateway(gateway, attempt, _("Save a card for future payments"), return_url_for)
    return PaymentStart(attempt=attempt, result=result)


def _open_at_gateway(gateway, attempt: PaymentAttempt, description: str, return_url_for) -> StartResult:
    success_url, cancel_url = return_url_for(attempt)
    try:
        result = gateway.start_payment(attempt=attempt, description=description, success_url=success_url, cancel_url=cancel_url)
    except GatewayError as exc:
        PaymentAttempt.objects.filter(pk=attempt.pk).update(status=Status.FAILED, failure_message=str(exc)[:255])
        raise PaymentNotAllowed(str(exc))
    PaymentAttempt.objects.filter(pk=attempt.pk).update(external_id=result.external_id, status=Status.PENDING)
    attempt.external_id, attempt.status = result.external_id, Status.PENDING
    return result


# --- webhooks ---------------------------------------------------------------------------------------

WEBHOOK_STATUS = {Result.BAD_SIGNATURE: 400, Result.STALE: 400, Result.MALFORMED: 400, Result.ERROR: 500}


def webhook_receive(*, gateway_code: str, body: bytes, headers, remote_ip: str | None) -> tuple[int, str]:
    """Log the delivery, verify it with the gateway, apply it. Returns (HTTP status, result)."""
    gateway = get_gateway(gateway_code)
    delivery = WebhookDelivery.objects.create(
        gateway=gateway_code[:32], remote_ip=remote_ip, payload=body.decode("utf-8", "replace")[:200_000],
        signature=(headers.get("Stripe-Signature") or headers.get("Sandbox-Signature") or "")[:512],
    )
    attempt = None
    try:
        if gateway is None or not gateway.is_configured():
            raise WebhookRejected(Result.MALFORMED, "Unknown or unconfigured gateway.")
        events = gateway.parse_webhook(body=body, headers=headers)
        delivery.event_id, delivery.event_type = events[0].event_id[:128], events[0].event_type[:64]
        result, detail = Result.IGNORED, ""
        for event in events:
            result, attempt, detail = event_apply(gateway_code=gateway.code, event=event)
    except WebhookRejected as exc:
        result, detail = exc.result, str(exc)
        logger.warning("webhook %s rejected (%s): %s", gateway_code, exc.result, exc)
    except Exception as exc:  # the provider will retry; staff see the error on the delivery
        logger.exception("webhook %s failed", gateway_code)
        result, detail = Result.ERROR, f"{type(exc).__name__}: {exc}"
    status = WEBHOOK_STATUS.get(result, 200)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        result=result, http_status=status, detail=detail[:5000], attempt=attempt,
        event_id=delivery.event_id, event_type=delivery.event_type,
    )
    return status, result


def event_apply(*, gateway_code: str, event: GatewayEvent) -> tuple[str, PaymentAttempt | None, str]:
    if event.kind == "ignored":
        return Result.IGNORED, None, ""
    try:
        reference = uuid.UUID(event.reference)
    except ValueError:
        reference = None
    attempt = PaymentAttempt.objects.filter(gateway=gateway_code, reference=reference).first() if reference else None
    if attempt is None:
        # Acknowledged so the provider stops retrying, but nothing is credited: staff see it in the log.
        logger.warning("webhook %s: unknown payment reference %r (%s)", gateway_code, event.reference, event.event_id)
        return Result.UNKNOWN_REFERENCE, None, f"No payment attempt {event.reference!r}."
    if event.kind == "succeeded":
        result, detail = attempt_succeed(attempt=attempt, transaction_id=event.transaction_id, amount=event.amount,
                                         currency=event.currency, method=event.method)
    elif event.kind == "method_saved":
        result, detail = attempt_method_saved(attempt=attempt, method=event.method)
    elif event.kind in ("failed", "cancelled"):
        result, detail = attempt_fail(attempt=attempt, message=event.failure_message, cancelled=event.kind == "cancelled")
    elif event.kind == "pending":
        updated = PaymentAttempt.objects.filter(pk=attempt.pk, status__in=[Status.CREATED, Status.PENDING]).update(
            status=Status.PENDING, transaction_id=event.transaction_id or attempt.transaction_id)
        result, detail = (Result.PROCESSED if updated else Result.DUPLICATE), ""
    else:  # "refunded": refunds are recorded when staff start them; the event only confirms
        result, detail = Result.PROCESSED, "refund confirmed"
    return result, attempt, detail


@transaction.atomic
def attempt_succeed(*, attempt: PaymentAttempt, transaction_id: str, amount: Decimal | None, currency: str,
                    method: MethodDetails | None = None) -> tuple[str, str]:
    attempt = PaymentAttempt.objects.select_for_update(of=("self",)).select_related("invoice", "customer").get(pk=attempt.pk)
    if attempt.status in (Status.SUCCEEDED, Status.REFUNDED):
        return Result.DUPLICATE, ""
    if attempt.purpose == PaymentAttempt.Purpose.SETUP:
        return attempt_method_saved(attempt=attempt, method=method)
    if (not transaction_id or amount is None or not amount.is_finite() or amount <= 0
            or not fits_minor_units(amount, currency or "XXX")):
        raise WebhookRejected(Result.MALFORMED, "A success event needs a transaction id and a positive amount.")
    result, detail, invoice = Result.PROCESSED, "", attempt.invoice
    if amount != attempt.amount or currency != attempt.currency:
        # Not what was asked (a provider bug or a forged event): nothing is credited automatically. The
        # attempt stays open with the received transaction noted; staff settle it after checking the
        # provider (bank-transfer record or a balance adjustment), the delivery log shows "mismatch".
        detail = (f"Held for staff: expected {attempt.amount} {attempt.currency}, received {amount} {currency} "
                  f"(transaction {transaction_id}).")
        logger.warning("payment attempt %s: %s", attempt.reference, detail)
        PaymentAttempt.objects.filter(pk=attempt.pk).update(failure_message=detail[:255])
        return Result.MISMATCH, detail
    if invoice is not None and not Invoice.objects.filter(pk=invoice.pk, status__in=Invoice.OPEN_STATUSES).exists():
        # Paid meanwhile (another card, the balance): the money is not lost, payment_record puts it on the balance.
        detail = "The invoice was already paid; credited to the balance."
    payment = payment_record(
        idempotency_key=f"{attempt.gateway}:{transaction_id}", customer=attempt.customer, amount=amount,
        currency=currency, method=attempt.gateway, invoice=invoice, gateway=attempt.gateway, external_id=transaction_id,
    )
    attempt.status, attempt.transaction_id, attempt.payment_id = Status.SUCCEEDED, transaction_id, payment.pk
    attempt.failure_message = detail[:255]
    if method is not None and attempt.save_method:
        attempt.saved_method = method_save(customer=attempt.customer, gateway_code=attempt.gateway, details=method)
    attempt.save()
    if attempt.purpose == PaymentAttempt.Purpose.AUTOPAY:
        _card_auto_top_up_settle(attempt=attempt, succeeded=True)
    return result, detail


@transaction.atomic
def attempt_fail(*, attempt: PaymentAttempt, message: str, cancelled: bool = False) -> tuple[str, str]:
    attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
    if attempt.status in (Status.SUCCEEDED, Status.REFUNDED, Status.FAILED, Status.CANCELLED):
        return Result.DUPLICATE, ""
    if attempt.purpose != PaymentAttempt.Purpose.AUTOPAY and attempt.external_id and not cancelled:
        # A declined card on a hosted page: the customer may still try another card there.
        PaymentAttempt.objects.filter(pk=attempt.pk).update(failure_message=message[:255])
        return Result.PROCESSED, "declined; the checkout stays open"
    attempt.status = Status.CANCELLED if cancelled else Status.FAILED
    attempt.failure_message = message[:255]
    attempt.save(update_fields=["status", "failure_message", "updated_at"])
    if attempt.purpose == PaymentAttempt.Purpose.AUTOPAY:
        _card_auto_top_up_settle(attempt=attempt, succeeded=False)
    return Result.PROCESSED, ""


@transaction.atomic
def attempt_method_saved(*, attempt: PaymentAttempt, method: MethodDetails | None) -> tuple[str, str]:
    attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
    if method is None:
        raise WebhookRejected(Result.MALFORMED, "No payment method in the event.")
    if attempt.status == Status.SUCCEEDED:
        return Result.DUPLICATE, ""
    attempt.saved_method = method_save(customer=attempt.customer, gateway_code=attempt.gateway, details=method)
    attempt.status = Status.SUCCEEDED
    attempt.save(update_fields=["saved_method", "status", "updated_at"])
    return Result.PROCESSED, ""


# --- saved payment methods --------------------------------------------------------------------------

@transaction.atomic
def method_save(*, customer: Customer, gateway_code: str, details: MethodDetails) -> SavedPaymentMethod:
    # Serialises "first method is default"; NO KEY, like billing's payment lock taken earlier in a webhook.
    Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).first()
    method, created = SavedPaymentMethod.objects.get_or_create(
        gateway=gateway_code, token=details.token,
        defaults={"customer": customer, "kind": details.kind, "brand": details.brand, "last4": details.last4,
                  "exp_month": details.exp_month, "exp_year": details.exp_year},
    )
    if method.customer_id != customer.pk:
        raise WebhookRejected(Result.MISMATCH, "Payment method token belongs to another customer.")
    if details.gateway_customer_id:
        GatewayCustomer.objects.get_or_create(customer=customer, gateway=gateway_code,
                                              defaults={"external_id": details.gateway_customer_id})
    if created and not SavedPaymentMethod.objects.filter(customer=customer, is_default=True).exists():
        method.is_default = True
        method.save(update_fields=["is_default"])
    if created:
        activity_record(action="billing.payment_method_added", customer=customer,
                        details={"method": str(method), "gateway": gateway_code})
    return method


@transaction.atomic
def method_set_default(*, method: SavedPaymentMethod, actor=None) -> SavedPaymentMethod:
    Customer.objects.select_for_update(no_key=True).filter(pk=method.customer_id).first()
    SavedPaymentMethod.objects.filter(customer_id=method.customer_id, is_default=True).exclude(pk=method.pk).update(is_default=False)
    SavedPaymentMethod.objects.filter(pk=method.pk).update(is_default=True)
    method.is_default = True
    return method


def method_remove(*, method: SavedPaymentMethod, actor=None) -> None:
    gateway = get_gateway(method.gateway)
    if gateway is not None:
        try:
            gateway.delete_saved_method(method=method)
        except GatewayError:
            logger.warning("could not detach %s at %s; removed locally", method.pk, method.gateway, exc_info=True)
    with transaction.atomic():
        customer = Customer.objects.select_for_update(no_key=True).get(pk=method.customer_id)
        was_default, label = method.is_default, str(method)
        AutopaySettings.objects.filter(method=method).update(enabled=False, method=None)
        method.delete()
        if was_default:
            successor = SavedPaymentMethod.objects.filter(customer=customer).order_by("-created_at").first()
            if successor:
                SavedPaymentMethod.objects.filter(pk=successor.pk).update(is_default=True)
        activity_record(action="billing.payment_method_removed", customer=customer, actor=actor, details={"method": label})


# --- refunds (staff) --------------------------------------------------------------------------------

def attempt_refund(*, attempt: PaymentAttempt, amount: Decimal, actor, reason: str = "") -> str:
    """Refund through the gateway (money back to the card), on the ledger: billing reserves the refund
    (stable idempotency key, balance part set aside) and commits before the gateway is called with that
    key; then the refund is completed (clearing, revenue and tax reversed) or, if the gateway refused,
    the reservation is reversed."""
    if attempt.status not in (Status.SUCCEEDED, Status.REFUNDED) or attempt.purpose == PaymentAttempt.Purpose.SETUP \
            or attempt.payment_id is None:
        raise GatewayError(_("Only a successful payment can be refunded."))
    amount = quantize(amount, attempt.currency)
    if amount <= 0 or attempt.refunded_amount + amount > attempt.amount:
        raise GatewayError(_("The refund exceeds what is left of the payment."))
    gateway = get_gateway(attempt.gateway)
    if gateway is None:
        raise GatewayError(_("This gateway cannot refund automatically."))
    payment = Payment.objects.get(pk=attempt.payment_id)
    try:
        refund = payment_refund_reserve(payment=payment, amount=amount, reason=reason or _("Refund by staff"), actor=actor)
    except BillingError as exc:
        raise GatewayError(exc.messages[0])
    return _refund_at_gateway(gateway, attempt, refund, actor)


def attempt_refund_resume(*, refund: PaymentRefund, actor) -> str:
    """Finish a card refund left pending (the process stopped between reserving it and recording the
    gateway's answer): ask the gateway again with the same idempotency key (Stripe returns the refund it
    already made instead of a second one) and complete or fail it."""
    if refund.status != PaymentRefund.Status.PENDING:
        raise GatewayError(_("This refund is not pending."))
    attempt = PaymentAttempt.objects.get(payment_id=refund.payment_id, status__in=[Status.SUCCEEDED, Status.REFUNDED])
    gateway = get_gateway(attempt.gateway)
    if gateway is None:
        raise GatewayError(_("This gateway cannot refund automatically."))
    return _refund_at_gateway(gateway, attempt, refund, actor)


def _refund_at_gateway(gateway, attempt: PaymentAttempt, refund: PaymentRefund, actor) -> str:
    amount = refund.amount
    try:
        refund_id = gateway.refund(attempt=attempt, amount=amount, idempotency_key=refund.idempotency_key)
    except GatewayError as exc:
        payment_refund_fail(refund=refund, message=str(exc), actor=actor)
        raise
    with transaction.atomic():
        # The attempt row first, then billing's invoice and accounts: the order attempt_succeed uses.
        locked = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        # Completions of this attempt's refunds are serialised by that lock: one completed meanwhile was counted there.
        if PaymentRefund.objects.get(pk=refund.pk).status != PaymentRefund.Status.PENDING:
            return refund_id
        payment_refund_complete(refund=refund, external_id=refund_id, actor=actor)
        locked.refunded_amount += amount
        if locked.refunded_amount == locked.amount:
            locked.status = Status.REFUNDED
        locked.save(update_fields=["refunded_amount", "status", "updated_at"])
        activity_record(action="billing.gateway_refund", customer=locked.customer, actor=actor, visible_to_customer=False,
                        details={"attempt": str(locked.reference), "amount": str(amount), "refund": refund_id})
    attempt.refresh_from_db()
    return refund_id


def payment_refund_to_origin(*, payment: Payment, amount: Decimal, reason: str, actor, bank_reference: str = "") -> PaymentRefund:
    """Send (part of) a payment back where it came from, on the ledger: through its gateway when it came
    from one that refunds (card), else as a bank transfer staff made (`bank_reference` required).
    The entry point for every "refund to card/bank" (admin, account deletion settlement)."""
    attempt = (PaymentAttempt.objects.filter(payment_id=payment.pk, status__in=[Status.SUCCEEDED, Status.REFUNDED])
               .exclude(gateway="bank_transfer").first())
    if attempt is not None:
        try:
            attempt_refund(attempt=attempt, amount=amount, actor=actor, reason=reason)
        except GatewayError as exc:
            raise BillingError(str(exc), code="gateway")
        return payment.refunds.filter(status=PaymentRefund.Status.SUCCEEDED).order_by("-pk").first()
    return payment_refund_sent_by_bank(payment=payment, amount=amount, bank_reference=bank_reference, reason=reason, actor=actor)


# --- bank transfer (staff) --------------------------------------------------------------------------

def bank_transfer_record(*, invoice: Invoice, amount: Decimal, bank_reference: str, received_on: date, actor) -> BankTransferReceipt:
    """Staff matched a bank statement line to an invoice. The bank's reference is the idempotency key."""
    bank_reference = bank_reference.strip()
    if not bank_reference:
        raise BillingError(_("Enter the bank's transaction reference."))
    if amount <= 0 or not fits_minor_units(amount, invoice.currency):
        raise BillingError(_("Enter a positive amount with at most %(n)s decimals.") % {"n": abs(quantum(invoice.currency).as_tuple().exponent)})
    with transaction.atomic():
        existing = BankTransferReceipt.objects.filter(bank_reference=bank_reference).first()
        if existing is not None:
            if existing.invoice_id != invoice.pk or existing.amount != amount:
                raise BillingError(_("This bank reference was already recorded for another payment."))
            return existing
        payment = payment_record(
            idempotency_key=f"bank_transfer:{bank_reference}", customer=invoice.customer, amount=amount,
            currency=invoice.currency, method="bank_transfer", invoice=invoice, gateway="bank_transfer",
            external_id=bank_reference, actor=actor,
            memo=_("Bank transfer %(ref)s") % {"ref": bank_reference},
        )
        receipt = BankTransferReceipt.objects.create(
            invoice=invoice, amount=amount, currency=invoice.currency, bank_reference=bank_reference,
            received_on=received_on, recorded_by=actor, payment_id=payment.pk,
        )
        activity_record(action="billing.bank_transfer_recorded", customer=invoice.customer, actor=actor,
                        visible_to_customer=False,
                        details={"invoice": invoice.number, "amount": str(amount), "reference": bank_reference})
    return receipt


# --- auto-payment -----------------------------------------------------------------------------------

@transaction.atomic
def card_auto_top_up_configure(*, customer: Customer, enabled: bool, method: SavedPaymentMethod | None, monthly_limit: Decimal,
                      actor=None) -> AutopaySettings:
    if method is not None and method.customer_id != customer.pk:
        raise BillingError("Payment method belongs to another customer.")
    if enabled and method is None:
        raise BillingError(_("Choose a saved payment method."))
    # The customer row first (the lock order of an account currency change, which converts the cap).
    customer = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
    row, _created = AutopaySettings.objects.select_for_update().get_or_create(customer=customer)
    row.enabled, row.method, row.monthly_limit = enabled, method, quantize(monthly_limit, customer.currency)
    row.monthly_limit_currency = customer.currency
    row.full_clean()
    row.save()
    activity_record(action="billing.autopay_configured", customer=customer, actor=actor,
                    details={"enabled": enabled, "method": str(method) if method else "",
                             "monthly_limit": str(row.monthly_limit), "currency": customer.currency})
    return row


def card_auto_top_up_currency_change(customer: Customer, old_currency: str, new_currency: str, convert) -> None:
    """billing hook: the monthly cap moves to the new account currency with the balance, under the
    switch's lock (a 5,000 RUB cap must not become a 5,000 EUR one)."""
    row = AutopaySettings.objects.select_for_update().filter(customer_id=customer.pk).first()
    if row is None:
        return
    row.monthly_limit = convert(row.monthly_limit, row.monthly_limit_currency)
    row.monthly_limit_currency = new_currency
    row.save(update_fields=["monthly_limit", "monthly_limit_currency", "updated_at"])


def card_auto_top_up_charge(*, customer: Customer, needed_amount: Decimal, reason: str) -> bool:
    """Charge the customer's auto-payment method for `needed_amount` (account currency), capped by
    what is left of this month's maximum, at most once per customer per day. True if money was
    collected or is on its way. Orders' renewal job calls this when a renewal is due without funds."""
    today = provider_today()
    with transaction.atomic():
        config = (AutopaySettings.objects.select_for_update(of=("self",)).select_related("method", "customer")
                  .filter(customer=customer, enabled=True, method__isnull=False).first())
        if config is None:
            return False
        customer = config.customer
        if payment_blockers(customer):  # the payment gate: no card charge for a customer who may not pay
            return False
        currency = customer.currency
        if config.monthly_limit_currency != currency:
            return False  # an account currency change is converting the cap right now; the next run charges
        amount = Decimal(needed_amount).quantize(quantum(currency), rounding=ROUND_UP)
        amount = min(amount, config.monthly_limit - card_auto_top_up_month_used(customer=customer, today=today))
        if amount <= 0:
            return False
        try:
            with transaction.atomic():
                charge = AutopayCharge.objects.create(customer=customer, day=today, amount=amount, currency=currency,
                                                      reason=reason[:255])
        except IntegrityError:
            return False  # already charged (or tried) today: another run got here first
        attempt = PaymentAttempt.objects.create(
            customer=customer, gateway=config.method.gateway, purpose=PaymentAttempt.Purpose.AUTOPAY, amount=amount,
            currency=currency, saved_method=config.method, status=Status.PENDING,
        )
        charge.attempt = attempt
        charge.save(update_fields=["attempt"])
        method = config.method
    gateway = get_gateway(attempt.gateway)
    if gateway is None:
        attempt_fail(attempt=attempt, message="gateway unavailable")
        return False
    return _charge_saved_method(gateway, attempt, method) != "failed"


def _card_auto_top_up_settle(*, attempt: PaymentAttempt, succeeded: bool) -> None:
    charge = AutopayCharge.objects.select_for_update().filter(attempt=attempt).first()
    if charge is None or charge.status != AutopayCharge.Status.PENDING:
        return
    charge.status = AutopayCharge.Status.SUCCEEDED if succeeded else AutopayCharge.Status.FAILED
    charge.failure_message = attempt.failure_message if not succeeded else ""
    charge.save(update_fields=["status", "failure_message"])
    customer = attempt.customer
    with translation.override(customer.language):
        context = {
            "amount": format_money(charge.amount, charge.currency, customer.language),
            "service": _("the top-up of your balance with %(method)s") % {"method": attempt.saved_method or _("your saved card")},
            "reason": charge.failure_message,
        }
    notify(customer=customer, kind=Kind.AUTOPAY_SUCCEEDED if succeeded else Kind.AUTOPAY_FAILED, context=context,
            link=reverse("gateways:autopay"), dedupe_key=f"autopay:{charge.pk}")


def card_auto_top_ups_run() -> int:
    """The periodic job: top up every auto-paying customer whose balance is below the threshold or
    cannot cover open renewal invoices, by enough for the next month. Returns how many were charged."""
    charged = 0
    for config in AutopaySettings.objects.filter(enabled=True, method__isnull=False).select_related("customer"):
        customer = config.customer
        balance = balance_of(customer)
        if not card_auto_top_up_is_due(customer=customer, balance=balance):
            continue
        needed = card_auto_top_up_needed_amount(customer=customer, balance=balance)
        if needed > 0:
            if card_auto_top_up_charge(customer=customer, needed_amount=needed,
                             reason=_("Balance %(balance)s below what is needed") % {"balance": format_money(balance, customer.currency)}):
                charged += 1
    return charged


# --- payment without login --------------------------------------------------------------------------

def _pay_link_signer(invoice_id: int) -> signing.TimestampSigner:
    # Salted per invoice: a token is useless for any other invoice id.
    return signing.TimestampSigner(salt=f"billing.gateways.pay_link:{invoice_id}")


def pay_link_token(*, invoice: Invoice) -> str:
    return _pay_link_signer(invoice.pk).sign(str(invoice.customer_id))


def pay_link_check(*, invoice_id: int, token: str) -> int:
    """Return the customer id the link was made for. Raises signing.BadSignature (tampered or another
    invoice) or signing.SignatureExpired (older than PAY_LINK_MAX_AGE)."""
    return int(_pay_link_signer(invoice_id).unsign(token, max_age=settings.PAY_LINK_MAX_AGE))


def pay_link_url(*, invoice: Invoice) -> str:
    """Absolute pay-without-login link, or "" when the customer has not enabled it or nothing is due."""
    if not invoice.customer.pay_without_login or not invoice.is_open:
        return ""
    path = reverse("gateways:pay_link", kwargs={"invoice_id": invoice.pk, "token": pay_link_token(invoice=invoice)})
    return settings.PORTAL_BASE_URL + path


def pay_link_email_context(invoice: Invoice) -> dict:
    """The "invoice issued" email's part from gateways (billing.hooks): the pay-without-login link."""
    url = pay_link_url(invoice=invoice)
    return {"pay_link": url} if url else {}
