"""Refunds to the card or bank account a payment came from: reserve, then complete (money sent) or fail."""

from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services.activity import activity_record

from .. import hooks
from ..models import ZERO, CreditNote, Invoice, LedgerAccount, LedgerEntry, LedgerTransaction, Payment, PaymentRefund
from ..money import fits_minor_units, format_money, quantize
from ..rates import Quote, RateTable
from .corrections import credit_note_tax_part, credit_note_totals
from .errors import BillingError, InsufficientFunds
from .invoices import invoice_lock
from .ledger import customer_account, ledger_accounts_lock, ledger_post, provider_account
from .numbering import document_number, document_numbers_reserve


def _payment_applied_to_invoice(payment: Payment) -> Decimal:
    """What the payment paid towards its service invoice (its holding leg); the rest went to the balance."""
    if payment.invoice_id is None or payment.invoice.kind == Invoice.Kind.ADVANCE:
        return ZERO
    return LedgerEntry.objects.filter(
        transaction__idempotency_key=f"payment:{payment.pk}", account__kind=LedgerAccount.Kind.HOLDING, amount__gt=0,
    ).aggregate(total=Sum("amount"))["total"] or ZERO


def _refund_split(payment: Payment, invoice: Invoice | None, amount: Decimal, earlier: list["PaymentRefund"]) -> tuple[Decimal, Decimal]:
    """(invoice part, balance part) of a refund: first what the payment paid on its service invoice
    (revenue and tax are reversed), then what it put on the balance."""
    if invoice is None or invoice.kind == Invoice.Kind.ADVANCE or invoice.status == Invoice.Status.CANCELLED:
        return ZERO, amount
    if invoice.is_open:
        raise BillingError(_("Invoice %(number)s is still being paid: cancel it first (what was paid on it returns to the "
                             "balance), then refund.") % {"number": invoice.number}, code="invoice_open")
    credited, _tax = credit_note_totals(invoice)
    taken = sum((r.invoice_part for r in earlier), ZERO)
    invoice_part = max(ZERO, min(amount, _payment_applied_to_invoice(payment) - taken, invoice.total - credited))
    return invoice_part, amount - invoice_part


def _refund_balance_legs(payment: Payment, balance_part: Decimal, refunding: LedgerAccount,
                         earlier: list["PaymentRefund"]) -> tuple[list, Quote | None]:
    """Legs taking `balance_part` (payment currency) from the balance into `refunding`, at the rate the
    payment was credited with; the refund that empties the payment's balance share takes the remainder."""
    account = customer_account(customer=payment.customer)
    cur = payment.currency
    if account.currency == cur:
        return [(account, -balance_part), (refunding, balance_part)], None
    if payment.rate and payment.credited_currency == account.currency:
        quote = Quote(cur, account.currency, payment.rate, payment.rate_as_of)
        share = payment.amount - _payment_applied_to_invoice(payment)
        left = share - sum((r.balance_part for r in earlier), ZERO)
        if balance_part == left:
            already = -(LedgerEntry.objects.filter(
                account=account, transaction__payment=payment, transaction__kind__in=[LedgerTransaction.Kind.REFUND, LedgerTransaction.Kind.REVERSAL],
            ).aggregate(total=Sum("amount"))["total"] or ZERO)
            debited = payment.credited_amount - already
        else:
            debited = quantize(balance_part * payment.rate, account.currency)
    else:  # the account currency changed since the payment: no rate of its own to reverse
        quote = RateTable().quote(cur, account.currency)
        debited = quantize(balance_part * quote.rate, account.currency)
    return [
        (account, -debited),
        (provider_account(kind=LedgerAccount.Kind.FX, currency=account.currency), debited),
        (provider_account(kind=LedgerAccount.Kind.FX, currency=cur), -balance_part),
        (refunding, balance_part),
    ], quote


@transaction.atomic
def payment_refund_reserve(*, payment: Payment, amount: Decimal, reason: str, actor=None) -> PaymentRefund:
    """Step 1 of sending money back where it came from: fix the refund's idempotency key (stable:
    `refund:<payment>:<n>`) and move the balance part out of the customer's reach into the `refunding`
    account, committed BEFORE the gateway or the bank is asked. Then `payment_refund_complete` (money
    sent) or `payment_refund_fail` (nothing sent: the reservation is reversed)."""
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    invoice = invoice_lock(payment.invoice) if payment.invoice_id else None  # invoice rows before the payment row
    payment = Payment.objects.select_for_update(of=("self",)).select_related("customer", "invoice").get(pk=payment.pk)
    if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        raise BillingError(_("Only a received payment can be refunded."))
    earlier = list(payment.refunds.exclude(status=PaymentRefund.Status.FAILED))
    left = payment.amount - sum((r.amount for r in earlier), ZERO)
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0 or amount > left or not fits_minor_units(amount, payment.currency):
        raise BillingError(_("The refund must be between 0 and %(max)s.") % {"max": format_money(left, payment.currency)}, code="amount")
    invoice_part, balance_part = _refund_split(payment, invoice, amount, earlier)
    sequence = payment.refunds.count() + 1
    refund = PaymentRefund.objects.create(
        payment=payment, sequence=sequence, idempotency_key=f"refund:{payment.pk}:{sequence}", amount=amount,
        currency=payment.currency, invoice_part=invoice_part, balance_part=balance_part, reason=reason.strip()[:255],
        created_by=actor if actor is not None and actor.pk else None,
    )
    if balance_part:
        refunding = provider_account(kind=LedgerAccount.Kind.REFUNDING, currency=payment.currency)
        legs, quote = _refund_balance_legs(payment, balance_part, refunding, earlier)
        ledger_accounts_lock([leg[0] for leg in legs])
        try:
            ledger_post(idempotency_key=f"{refund.idempotency_key}:reserve", kind=LedgerTransaction.Kind.REFUND, legs=legs,
                        payment=payment, created_by=actor, quote=quote,
                        memo=_("Refund of payment #%(payment)s being sent") % {"payment": payment.pk})
        except InsufficientFunds:
            raise InsufficientFunds(_("The balance no longer holds this money (it was spent): refund at most what the balance holds."),
                                    code="insufficient_funds")
    return refund


@transaction.atomic
def payment_refund_complete(*, refund: PaymentRefund, external_id: str = "", actor=None) -> PaymentRefund:
    """Step 2: the money was sent (gateway refund id or bank reference). Posts the refunding account and
    the reversed revenue and tax (invoice currency and amounts, so the original rate) against the
    gateway's clearing account, with a credit note when it refunds an invoice. Idempotent: a refund no
    longer pending is returned as it is."""
    payment = Payment.objects.select_related("invoice").get(pk=refund.payment_id)
    invoice = invoice_lock(payment.invoice) if payment.invoice_id else None  # invoice, then refund and payment rows
    refund = PaymentRefund.objects.select_for_update().get(pk=refund.pk)
    if refund.status != PaymentRefund.Status.PENDING:
        return refund
    payment = Payment.objects.select_for_update(of=("self",)).select_related("customer").get(pk=payment.pk)
    return _payment_refund_post(refund, payment, invoice, external_id, actor)


def _payment_refund_post(refund: PaymentRefund, payment: Payment, invoice: Invoice | None, external_id: str, actor) -> PaymentRefund:
    cur = payment.currency
    legs = [(provider_account(kind=LedgerAccount.Kind.CLEARING, currency=cur, tag=payment.gateway or payment.method), refund.amount)]
    if refund.balance_part:
        legs.append((provider_account(kind=LedgerAccount.Kind.REFUNDING, currency=cur), -refund.balance_part))
    note_amount = tax_part = ZERO
    completes = False
    if invoice is not None and invoice.status in (Invoice.Status.PAID, Invoice.Status.REFUNDED):
        credited = sum((n.amount for n in invoice.credit_notes.all()), ZERO)
        credited_tax = sum((n.tax_amount for n in invoice.credit_notes.all()), ZERO)
        if invoice.kind == Invoice.Kind.ADVANCE:
            note_amount = min(refund.balance_part, invoice.total - credited)  # documents the advance paid back
        else:
            note_amount = refund.invoice_part
            tax_part = credit_note_tax_part(invoice, note_amount, credited, credited_tax) if note_amount else ZERO
            legs.append((provider_account(kind=LedgerAccount.Kind.REVENUE, currency=cur), -(note_amount - tax_part)))
            if tax_part:
                legs.append((provider_account(kind=LedgerAccount.Kind.TAX, currency=cur), -tax_part))
        completes = note_amount > 0 and note_amount == invoice.total - credited
    ledger_accounts_lock([leg[0] for leg in legs])
    number = ""
    if note_amount > 0:  # after the accounts, as in credit_note_issue (the only other user of this counter)
        year, sequence = document_numbers_reserve(series="CN")
        number = document_number(series="CN", year=year, sequence=sequence)
    label = hooks.payment_method_label(payment.method)
    memo = (_("Refund to %(method)s, credit note %(number)s") % {"method": label, "number": number} if number
            else _("Refund to %(method)s") % {"method": label})
    tx = ledger_post(idempotency_key=refund.idempotency_key, kind=LedgerTransaction.Kind.REFUND, legs=legs, payment=payment,
                     invoice=invoice if number else None, created_by=actor, memo=memo)
    if number:
        refund.credit_note = CreditNote.objects.create(
            number=number, invoice=invoice, customer=payment.customer, amount=note_amount, tax_amount=tax_part, currency=cur,
            reason=refund.reason, created_by=actor if actor is not None and actor.pk else None, ledger_transaction=tx, payment=payment,
        )
        if completes:
            invoice.status = Invoice.Status.REFUNDED
            invoice.save(update_fields=["status"])
    refund.status, refund.external_id, refund.completed_at = PaymentRefund.Status.SUCCEEDED, external_id[:200], timezone.now()
    refund.save(update_fields=["status", "external_id", "completed_at", "credit_note"])
    payment.refunded_amount += refund.amount
    if payment.refunded_amount == payment.amount:
        payment.status = Payment.Status.REFUNDED
    payment.save(update_fields=["refunded_amount", "status"])
    activity_record(action="billing.payment_refunded", customer=payment.customer, actor=actor, visible_to_customer=True,
                    details={"payment": payment.pk, "amount": str(refund.amount), "currency": cur, "method": str(label),
                             "credit_note": number, "reason": refund.reason})
    return refund


@transaction.atomic
def payment_refund_fail(*, refund: PaymentRefund, message: str, actor=None) -> PaymentRefund:
    """Nothing was sent: return the reserved balance part to the customer at the amounts it was taken."""
    refund = PaymentRefund.objects.select_for_update(of=("self",)).select_related("payment").get(pk=refund.pk)
    if refund.status != PaymentRefund.Status.PENDING:
        return refund
    reserve = LedgerTransaction.objects.filter(idempotency_key=f"{refund.idempotency_key}:reserve").first()
    if reserve is not None:
        legs = [(entry.account, -entry.amount) for entry in reserve.entries.select_related("account")]
        ledger_accounts_lock([leg[0] for leg in legs])
        ledger_post(idempotency_key=f"{refund.idempotency_key}:failed", kind=LedgerTransaction.Kind.REVERSAL, legs=legs,
                    payment=refund.payment, created_by=actor,
                    memo=_("Refund of payment #%(payment)s failed: amount returned") % {"payment": refund.payment_id})
    refund.status, refund.failure_message = PaymentRefund.Status.FAILED, message[:255]
    refund.save(update_fields=["status", "failure_message"])
    return refund


def payment_refund_sent_by_bank(*, payment: Payment, amount: Decimal, bank_reference: str, reason: str, actor) -> PaymentRefund:
    """Staff paid money back by bank transfer themselves: reserve and complete with the bank's reference."""
    if not bank_reference.strip():
        raise BillingError(_("Enter the bank's transaction reference."))
    refund = payment_refund_reserve(payment=payment, amount=amount, reason=reason, actor=actor)
    return payment_refund_complete(refund=refund, external_id=bank_reference.strip(), actor=actor)
