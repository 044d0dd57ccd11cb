"""Staff corrections: credit notes refunding (part of) a paid invoice to the balance, balance adjustments
and write-offs."""

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.services.activity import activity_record

from ..models import ZERO, CreditNote, Invoice, LedgerAccount, LedgerEntry, LedgerTransaction, PaymentRefund
from ..money import fits_minor_units, format_money, quantize
from ..rates import RATE_PLACES, Quote, RateTable
from .errors import BillingError
from .invoices import customer_currency_lock, invoice_lock
from .ledger import customer_account, ledger_accounts_lock, ledger_post, provider_account
from .numbering import document_number, document_numbers_reserve
from .payments import invoices_pay_from_balance_after_commit


def credit_note_totals(invoice: Invoice) -> tuple[Decimal, Decimal]:
    """(amount, tax) already credited on the invoice, plus the invoice part of refunds still being sent."""
    amount = tax = ZERO
    for note in invoice.credit_notes.all():
        amount += note.amount
        tax += note.tax_amount
    pending = PaymentRefund.objects.filter(payment__invoice=invoice, status=PaymentRefund.Status.PENDING)
    amount += sum((r.invoice_part for r in pending), ZERO)
    return amount, tax


def credit_note_tax_part(invoice: Invoice, amount: Decimal, credited: Decimal, credited_tax: Decimal) -> Decimal:
    """Pro-rata tax of a credit note; the one that completes the refund takes what is left, so the credit
    notes' tax adds up to the invoice's tax exactly (no cent of drift)."""
    if amount == invoice.total - credited:
        return invoice.tax_amount - credited_tax
    return quantize(invoice.tax_amount * amount / invoice.total, invoice.currency) if invoice.total else ZERO


def _balance_funding(invoice: Invoice, account: LedgerAccount) -> tuple[Decimal, Decimal, dt.datetime | None]:
    """What the balance account paid towards the invoice: (invoice-currency amount covered, account-currency
    amount debited, rate time of the first conversion)."""
    covered = debited = ZERO
    as_of = None
    charges = invoice.ledger_transactions.filter(kind=LedgerTransaction.Kind.CHARGE).prefetch_related("entries__account")
    for tx in charges:
        entries = list(tx.entries.all())
        from_account = -sum((e.amount for e in entries if e.account_id == account.pk), ZERO)
        if not from_account:
            continue
        if account.currency == invoice.currency:
            covered += from_account
        else:
            covered -= sum((e.amount for e in entries if e.account.kind == LedgerAccount.Kind.FX and e.currency == invoice.currency), ZERO)
            as_of = as_of or tx.rate_as_of
        debited += from_account
    return covered, debited, as_of


def _credit_note_balance_legs(invoice: Invoice, amount: Decimal, completes: bool) -> tuple[list, Quote | None]:
    """Legs crediting `amount` (invoice currency) back to the balance at the rate the invoice was paid
    with (not today's). Only when the balance never paid it is today's rate used."""
    account = customer_account(customer=invoice.customer)
    cur = invoice.currency
    if account.currency == cur:
        return [(account, amount)], None
    covered, debited, as_of = _balance_funding(invoice, account)
    if covered > 0:
        rate = (debited / covered).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
        quote = Quote(cur, account.currency, rate, as_of)
        if completes and covered == invoice.total:
            earlier = LedgerEntry.objects.filter(
                account=account, transaction__kind=LedgerTransaction.Kind.REFUND, transaction__invoice=invoice,
                transaction__credit_note__isnull=False,
            ).aggregate(total=Sum("amount"))["total"] or ZERO
            credited = debited - earlier  # the last credit note returns exactly what is left of what was paid
        else:
            credited = quantize(amount * rate, account.currency)
    else:
        quote = RateTable().quote(cur, account.currency)
        credited = quantize(amount * quote.rate, account.currency)
    return [
        (provider_account(kind=LedgerAccount.Kind.FX, currency=cur), amount),
        (provider_account(kind=LedgerAccount.Kind.FX, currency=account.currency), -credited),
        (account, credited),
    ], quote


@transaction.atomic
def credit_note_issue(*, invoice: Invoice, reason: str, actor, amount: Decimal | None = None) -> CreditNote:
    """Refund (part of) a paid service invoice to the balance: reverses revenue and tax pro rata (the
    last credit note takes the remainder), credits the customer at the rate the invoice was paid with,
    and documents it with a credit note in its own series (CN-2026-000001). A full refund marks the
    invoice refunded. Money back to a card or bank account is `payment_refund_reserve/complete`."""
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    invoice = invoice_lock(invoice)
    if invoice.status != Invoice.Status.PAID:
        raise BillingError(_("Only a paid invoice can be refunded."))
    if invoice.kind == Invoice.Kind.ADVANCE:
        # Advance money is already on the balance: refunding it to the balance would double it.
        raise BillingError(_("An advance payment is already on the balance: refund it to the card or bank account it came from."),
                           code="advance_to_balance")
    if PaymentRefund.objects.filter(payment__invoice=invoice, status=PaymentRefund.Status.PENDING).exists():
        # Its credit note is not issued yet, so the tax remainder cannot be known.
        raise BillingError(_("A refund of this invoice is being sent; try again once it has completed."), code="refund_pending")
    credited, credited_tax = credit_note_totals(invoice)
    refundable = invoice.total - credited
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable or not fits_minor_units(amount, invoice.currency):
        raise BillingError(_("The refund must be between 0 and %(max)s.") % {"max": format_money(refundable, invoice.currency)})
    cur = invoice.currency
    tax_part = credit_note_tax_part(invoice, amount, credited, credited_tax)
    credit, quote = _credit_note_balance_legs(invoice, amount, completes=amount == refundable)
    legs = [(provider_account(kind=LedgerAccount.Kind.REVENUE, currency=cur), -(amount - tax_part))]
    if tax_part:
        legs.append((provider_account(kind=LedgerAccount.Kind.TAX, currency=cur), -tax_part))
    legs += credit
    ledger_accounts_lock([leg[0] for leg in legs])
    year, sequence = document_numbers_reserve(series="CN")
    number = document_number(series="CN", year=year, sequence=sequence)
    tx = ledger_post(idempotency_key=f"creditnote:{number}", kind=LedgerTransaction.Kind.REFUND, legs=legs,
                     invoice=invoice, created_by=actor, quote=quote,
                     memo=_("Refund to balance, credit note %(number)s") % {"number": number})
    note = CreditNote.objects.create(number=number, invoice=invoice, customer=invoice.customer, amount=amount,
                                     tax_amount=tax_part, currency=cur, reason=reason[:255], created_by=actor, ledger_transaction=tx)
    if amount == refundable:
        invoice.status = Invoice.Status.REFUNDED
        invoice.save(update_fields=["status"])
    activity_record(action="billing.refund", customer=invoice.customer, actor=actor, visible_to_customer=True,
                    details={"invoice": invoice.number, "credit_note": number, "amount": str(amount), "currency": cur, "reason": reason})
    return note


@transaction.atomic
def balance_write_off(*, customer: Customer, reason: str, actor, idempotency_key: str) -> list[LedgerTransaction]:
    """Close every balance account of the customer to zero against `adjustment:writeoff:<CUR>` (money
    the provider keeps, or a debt it forgives), audited. Idempotent per key and currency."""
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    accounts = list(LedgerAccount.objects.filter(customer=customer, kind=LedgerAccount.Kind.CUSTOMER).order_by("pk"))
    locked = ledger_accounts_lock(accounts)
    done = []
    for account in locked.values():
        key = f"{idempotency_key}:{account.currency}"
        existing = LedgerTransaction.objects.filter(idempotency_key=key).first()
        if existing is not None:
            done.append(existing)
            continue
        if not account.balance:
            continue
        other = provider_account(kind=LedgerAccount.Kind.ADJUSTMENT, currency=account.currency, tag="writeoff")
        amount = account.balance
        done.append(ledger_post(idempotency_key=key, kind=LedgerTransaction.Kind.ADJUSTMENT, legs=[(account, -amount), (other, amount)],
                                created_by=actor, memo=_("Balance written off: %(reason)s") % {"reason": reason}))
        activity_record(action="billing.balance_written_off", customer=customer, actor=actor, visible_to_customer=False,
                        details={"amount": str(amount), "currency": account.currency, "reason": reason})
    return done


@transaction.atomic
def balance_adjust(*, customer: Customer, amount: Decimal, reason: str, actor, idempotency_key: str | None = None) -> LedgerTransaction:
    """Staff manual credit (amount > 0) or debit (amount < 0) of the balance, with a reason."""
    account = customer_account(customer=customer, currency=customer_currency_lock(customer))
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    if not amount or not fits_minor_units(amount, account.currency):
        raise BillingError(_("Enter a non-zero amount in %(code)s.") % {"code": account.currency})
    key = idempotency_key or f"adjustment:{customer.pk}:{timezone.now().timestamp()}"
    existing = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    other = provider_account(kind=LedgerAccount.Kind.ADJUSTMENT, currency=account.currency)
    tx = ledger_post(idempotency_key=key, kind=LedgerTransaction.Kind.ADJUSTMENT, legs=[(account, amount), (other, -amount)],
                     created_by=actor, memo=reason)
    activity_record(action="billing.adjustment", customer=customer, actor=actor, visible_to_customer=True,
                    details={"amount": str(amount), "currency": account.currency, "reason": reason})
    if amount > 0:
        transaction.on_commit(lambda: invoices_pay_from_balance_after_commit(customer.pk))
    return tx
