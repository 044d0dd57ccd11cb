"""Payments received: recorded once per idempotency key, posted onto an invoice or the balance, and the
auto-payment of open invoices from the balance that follows."""

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.services.activity import activity_record
from notifications.kinds import Kind
from notifications.services import notify as _notify  # module-level name: tests replace it

from .. import hooks
from ..models import ZERO, Invoice, LedgerAccount, LedgerTransaction, Payment
from ..money import fits_minor_units, format_money
from ..rates import RateTable
from .errors import BillingError, PaymentConflict
from .invoices import (
    currency_code_check, customer_credit_legs, customer_currency_lock, invoice_lock, invoice_mark_paid,
    invoice_pay_locked_from_balance, invoice_settlement_legs,
)
from .ledger import customer_account, ledger_accounts_lock, ledger_post, provider_account

logger = logging.getLogger(__name__)


def _same_payment(payment: Payment, *, customer, amount, currency, invoice) -> bool:
    return (payment.customer_id == customer.pk and payment.amount == amount and payment.currency == currency
            and payment.invoice_id == (invoice.pk if invoice else None))


def payment_record(
    *,
    idempotency_key: str,
    customer: Customer,
    amount: Decimal,
    currency: str,
    method: str,
    invoice: Invoice | None = None,
    gateway: str = "",
    external_id: str = "",
    memo: str = "",
    actor=None,
) -> Payment:
    """Record money received and post it: onto `invoice` (paying it when covered, any excess to the
    balance) or, without an invoice, to the balance. The same key twice records once; the same key
    with different details raises PaymentConflict. Called by gateways, staff (bank transfer), tests."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise BillingError(_("Payment amount must be positive."), code="amount")
    currency_code_check(currency)
    if not fits_minor_units(amount, currency):
        raise BillingError(_("Too many decimal places for %(code)s.") % {"code": currency}, code="amount")
    if invoice is not None and invoice.customer_id != customer.pk:
        raise BillingError("Invoice belongs to another customer.")
    if invoice is not None and invoice.currency != currency:
        raise BillingError(_("Pay invoice %(number)s in %(code)s.") % {"number": invoice.number, "code": invoice.currency})
    with transaction.atomic():
        existing = Payment.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            try:
                with transaction.atomic():
                    payment = Payment.objects.create(
                        idempotency_key=idempotency_key, customer=customer, invoice=invoice, method=method,
                        gateway=gateway, external_id=external_id, amount=amount, currency=currency,
                        status=Payment.Status.SUCCEEDED, memo=memo[:255],
                        created_by=actor if actor is not None and actor.pk else None,
                    )
            except IntegrityError:
                # A concurrent call with the same key committed first (we waited on its unique index).
                existing = Payment.objects.filter(idempotency_key=idempotency_key).first()
                if existing is None:
                    raise
        if existing is not None:
            if not _same_payment(existing, customer=customer, amount=amount, currency=currency, invoice=invoice):
                raise PaymentConflict(_("This payment reference was already used for a different payment."), code="conflict")
            return existing
        _payment_post(payment, actor)
        return payment


def _payment_post(payment: Payment, actor) -> None:
    customer = payment.customer
    # The money is already taken: it is recorded even when a rate is stale (at the last known rate).
    table = RateTable(allow_stale=True)
    clearing = provider_account(kind=LedgerAccount.Kind.CLEARING, currency=payment.currency, tag=payment.gateway or payment.method)
    legs: list = [(clearing, -payment.amount)]
    quote = None
    to_balance = payment.amount
    applied = ZERO
    invoice = None
    invoice_was_open = False
    if payment.invoice_id:
        invoice = invoice_lock(payment.invoice)
        invoice_was_open = invoice.is_open
    customer_currency_lock(customer)  # after the invoice (lock order); waits for a currency change
    if invoice is not None:
        if invoice.is_open:
            applied = min(payment.amount, invoice.amount_due)
            if invoice.kind == Invoice.Kind.ADVANCE:
                # A top-up credits what was paid at once, also when it is only part of the invoice.
                to_balance = payment.amount
            else:
                to_balance = payment.amount - applied
                holding = provider_account(kind=LedgerAccount.Kind.HOLDING, currency=invoice.currency)
                legs.append((holding, applied))
                if applied == invoice.amount_due:
                    settle, quote = invoice_settlement_legs(invoice, table)
                    legs += settle
    if to_balance:
        credit = customer_credit_legs(customer, to_balance, payment.currency, table)
        quote = credit.pop() or quote
        legs += credit
    if quote is not None:
        account = customer_account(customer=customer)
        credited = next(amount for acc, amount in legs if acc.pk == account.pk)
        payment.rate, payment.rate_as_of, payment.rate_stale = quote.rate, quote.as_of, quote.stale
        payment.credited_amount, payment.credited_currency = credited, account.currency
        payment.save(update_fields=["rate", "rate_as_of", "rate_stale", "credited_amount", "credited_currency"])
        if quote.stale:
            activity_record(action="billing.payment_stale_rate", customer=customer, visible_to_customer=False,
                            details={"payment": payment.pk, "amount": str(payment.amount), "currency": payment.currency,
                                     "rate": str(quote.rate), "credited": f"{credited} {account.currency}"})
    ledger_accounts_lock([leg[0] for leg in legs])
    label = hooks.payment_method_label(payment.method)
    memo = (_("Payment for invoice %(number)s (%(method)s)") % {"number": invoice.number, "method": label}
            if invoice else _("Balance top-up (%(method)s)") % {"method": label})
    ledger_post(idempotency_key=f"payment:{payment.pk}", kind=LedgerTransaction.Kind.TOPUP, legs=legs,
                invoice=invoice, payment=payment, created_by=actor, quote=quote, memo=memo)
    if invoice_was_open:
        if invoice.amount_paid + applied == invoice.total:
            invoice_mark_paid(invoice)
        else:
            invoice.amount_paid += applied
            invoice.status = Invoice.Status.IN_PROGRESS
            invoice.save(update_fields=["amount_paid", "status"])
    lang = customer.language
    with translation.override(lang):
        method_label = str(hooks.payment_method_label(payment.method))
    balance_now = customer_account(customer=customer).balance
    # A second payment for an invoice that was paid meanwhile is not lost: it is on the balance, and we say so.
    already_paid = invoice is not None and not invoice_was_open
    _notify(customer=customer, kind=Kind.PAYMENT_RECEIVED, link=reverse("billing:payment_detail", args=[payment.pk]),
            dedupe_key=f"payment:{payment.pk}",
            context={"amount": format_money(payment.amount, payment.currency, lang), "method": method_label,
                     "balance": format_money(balance_now, customer.currency, lang), "invoice": invoice.number if invoice else "",
                     "credited_to_balance": already_paid})
    balance_grew = bool(to_balance)
    if balance_grew:
        # Its own transaction after commit: it locks invoices, which must come before accounts.
        transaction.on_commit(lambda: invoices_pay_from_balance_after_commit(customer.pk))


def invoices_pay_from_balance_after_commit(customer_id: int) -> None:
    """`invoices_pay_from_balance` in its own transaction once money reached the balance (queued with
    on_commit: it locks invoices, which come before accounts); a failure is left to the periodic sweep."""
    try:
        invoices_pay_from_balance(customer=Customer.objects.get(pk=customer_id))
    except Exception:  # the payment is committed; the periodic job retries
        logger.exception("Paying open invoices from the balance failed for customer %s", customer_id)


@transaction.atomic
def invoices_pay_from_balance(*, customer: Customer, actor=None) -> int:
    """Fund deduction: pay the customer's unpaid service invoices the balance covers, oldest first.
    Returns how many were paid. SKIP LOCKED: an invoice being paid elsewhere is left to that payer."""
    candidates = list(Invoice.objects.filter(customer=customer, status=Invoice.Status.UNPAID)
                      .exclude(kind=Invoice.Kind.ADVANCE).order_by("pk")[:50])
    paid = 0
    for candidate in candidates:
        with transaction.atomic():
            # The owner (order) first, then the invoice, as everywhere; never waiting, so holding the
            # accounts of an invoice paid earlier in this loop cannot deadlock.
            if not hooks.lock_invoice_owners(candidate, skip_locked=True):
                continue
            invoice = (Invoice.objects.select_for_update(skip_locked=True, of=("self",)).select_related("customer")
                       .filter(pk=candidate.pk, status=Invoice.Status.UNPAID).first())
            if invoice is not None and invoice_pay_locked_from_balance(invoice, actor):
                paid += 1
    return paid
