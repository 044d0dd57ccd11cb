"""Invoices: issuing, paying from the balance, cancelling, top-up invoices and choosing the invoice's payer."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.services.activity import activity_record
from notifications.kinds import Kind
from notifications.services import notify as _notify  # module-level name: tests replace it

from .. import hooks
from ..models import ZERO, Invoice, InvoiceLine, LedgerAccount, LedgerTransaction, Payer
from ..money import format_money, quantize, quantize_down
from ..rates import Quote, RateError, RateTable
from .errors import BillingError, InsufficientFunds
from .ledger import customer_account, fx_accounts, ledger_accounts_lock, ledger_post, provider_account
from ..selectors import (
    balance_in_currency, balance_of, invoice_payment_blockers, payer_details, payer_snapshot_fields, profile_payer_snapshot,
    tax_for, tax_for_payer,
)
from ..tax import NO_TAX, invoice_totals, line_amount
from .numbering import document_number, document_numbers_reserve
from .payers import invoice_payment_gate_check


@dataclass
class LineInput:
    description: str
    quantity: int
    unit_price: Decimal
    reference: str = ""
    discount: bool = False  # a promo-code discount: unit_price <= 0


def currency_code_check(currency: str) -> None:
    if currency not in settings.CURRENCIES:
        raise BillingError(_("Unsupported currency %(code)s.") % {"code": currency}, code="currency")


@transaction.atomic
def invoice_issue(
    *,
    customer: Customer,
    kind: str,
    lines: list[LineInput],
    currency: str | None = None,
    idempotency_key: str | None = None,
    reference: str = "",
    untaxed: bool = False,
) -> Invoice:
    """Issue a numbered invoice with tax by the customer's country/profile and a payer snapshot.
    `untaxed`: not a supply (a late fee is compensation, outside the scope of VAT)."""
    if idempotency_key:
        existing = Invoice.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.customer_id != customer.pk:
                raise BillingError("Idempotency key belongs to another customer.")
            return existing
    if kind not in Invoice.Kind.values:
        raise BillingError(f"Unknown invoice kind {kind!r}.")
    currency = currency or customer.currency
    currency_code_check(currency)
    if not lines:
        raise BillingError(_("An invoice needs at least one line."))
    prepared = []
    for position, line in enumerate(lines):
        if not isinstance(line.unit_price, Decimal) or not line.unit_price.is_finite():
            raise BillingError(_("Unit price must be a non-negative amount."))
        if (line.unit_price > 0) if line.discount else (line.unit_price < 0):
            raise BillingError(_("Unit price must be a non-negative amount."))
        if not isinstance(line.quantity, int) or line.quantity < 1:
            raise BillingError(_("Quantity must be a positive whole number."))
        prepared.append(InvoiceLine(
            position=position, description=line.description[:255], quantity=line.quantity,
            unit_price=line.unit_price, amount=line_amount(line.unit_price, line.quantity, currency), reference=line.reference,
            is_discount=line.discount,
        ))
    subtotal = sum((line.amount for line in prepared), ZERO)
    if subtotal < 0:
        raise BillingError("A discount cannot exceed the invoice's other lines.")
    # Advance payments only fill the balance; tax is charged on the services the balance pays for.
    tax = NO_TAX if kind == Invoice.Kind.ADVANCE or untaxed else tax_for(customer)
    totals = invoice_totals(subtotal=subtotal, tax=tax, currency=currency)
    year, sequence = document_numbers_reserve(series="INV")
    invoice = Invoice(
        number=document_number(series="INV", year=year, sequence=sequence), year=year, sequence=sequence,
        customer=customer, kind=kind, currency=currency,
        subtotal=subtotal, tax_percent=tax.percent, tax_label=tax.label, reverse_charge=tax.reverse_charge,
        tax_amount=totals.tax_amount, total=totals.total, reference=reference, idempotency_key=idempotency_key,
        **profile_payer_snapshot(customer),
    )
    invoice.full_clean(exclude=["idempotency_key"])
    invoice.save()
    for line in prepared:
        line.invoice = invoice
    InvoiceLine.objects.bulk_create(prepared)
    link = reverse("billing:invoice_detail", args=[invoice.pk])
    _notify(
        customer=customer, kind=Kind.INVOICE_ISSUED, link=link, dedupe_key=f"invoice:{invoice.pk}:issued",
        context={**hooks.invoice_email_context(invoice),
                 "invoice_number": invoice.number, "amount": format_money(invoice.total, currency, customer.language),
                 "kind": invoice.kind, "invoice_id": invoice.pk},
    )
    return invoice


def invoice_lock(invoice: Invoice) -> Invoice:
    """Lock an invoice row, after the row that owns it (an order; see `hooks.lock_invoice_owners`)."""
    hooks.lock_invoice_owners(invoice)
    return Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)


def invoice_settlement_legs(invoice: Invoice, table: RateTable) -> tuple[list, Quote | None]:
    """Legs that take the invoice's total out of holding and recognise it: revenue and tax for a
    service invoice; the customer's balance (converted to the account currency) for an advance."""
    cur = invoice.currency
    legs = [(provider_account(kind=LedgerAccount.Kind.HOLDING, currency=cur), -invoice.total)]
    quote = None
    if invoice.kind == Invoice.Kind.ADVANCE:
        legs += customer_credit_legs(invoice.customer, invoice.total, cur, table)
        quote = legs.pop()
    else:
        legs = service_settlement_legs(
            holding=legs[0][0], revenue=provider_account(kind=LedgerAccount.Kind.REVENUE, currency=cur),
            tax=provider_account(kind=LedgerAccount.Kind.TAX, currency=cur) if invoice.tax_amount else None,
            total=invoice.total, subtotal=invoice.subtotal, tax_amount=invoice.tax_amount)
    return legs, quote


def service_settlement_legs(*, holding: LedgerAccount, revenue: LedgerAccount, tax: LedgerAccount | None,
                            total: Decimal, subtotal: Decimal, tax_amount: Decimal) -> list:
    """Legs that take a paid service invoice's total out of holding and recognise its revenue and tax
    (the pay-from-balance path and the set-based `bulk` path post the same)."""
    legs = [(holding, -total), (revenue, subtotal)]
    if tax_amount:
        legs.append((tax, tax_amount))
    return legs


def customer_currency_lock(customer: Customer) -> str:
    """The customer's account currency, read under FOR NO KEY UPDATE on the customer row (refreshing
    `customer.currency`). An account currency change holds the same lock until it commits, so money is
    never credited to or taken from the old currency's account after the switch. (Not FOR SHARE: a
    payment that then saves a card locks the row again, and two shared holders would deadlock; the
    customer's balance account serialises such postings anyway.) Rows that merely reference the
    customer (KEY SHARE) are not blocked. Lock order: invoice -> customer row -> accounts."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT currency FROM "{Customer._meta.db_table}" WHERE id = %s FOR NO KEY UPDATE', [customer.pk])
        customer.currency = cursor.fetchone()[0]
    return customer.currency


def customer_credit_legs(customer: Customer, amount: Decimal, currency: str, table: RateTable) -> list:
    """Legs crediting `amount` `currency` to the customer's balance through FX when the account
    currency differs. The last item is the Quote used (or None)."""
    account = customer_account(customer=customer, currency=customer_currency_lock(customer))
    if currency == account.currency:
        return [(account, amount), None]
    quote = table.quote(currency, account.currency)
    converted = quantize(amount * quote.rate, account.currency)
    fx = fx_accounts(currency, account.currency)
    return [
        (fx[currency], amount),
        (fx[account.currency], -converted),
        (account, converted),
        quote,
    ]


def customer_debit_legs(customer: Customer, amount: Decimal, currency: str, table: RateTable) -> tuple[list, Quote | None, Decimal]:
    """Legs taking the equivalent of `amount` `currency` from the balance: (legs, quote, debited)."""
    account = customer_account(customer=customer, currency=customer_currency_lock(customer))
    if currency == account.currency:
        return [(account, -amount)], None, amount
    quote = table.quote(currency, account.currency)
    debited = quantize(amount * quote.rate, account.currency)
    fx = fx_accounts(currency, account.currency)
    return [
        (account, -debited),
        (fx[account.currency], debited),
        (fx[currency], -amount),
    ], quote, debited


def invoice_mark_paid(invoice: Invoice) -> None:
    invoice.amount_paid = invoice.total
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["amount_paid", "status", "paid_at"])
    for handler in hooks.invoice_paid_handlers(invoice.kind):
        handler(invoice)


def invoice_pay_locked_from_balance(invoice: Invoice, actor=None) -> bool:
    """Pay a locked open invoice in full from the balance, or change nothing (also while the payment
    gate is closed: every path that spends the balance on an invoice comes through here or bulk)."""
    due = invoice.amount_due
    if due == 0:
        invoice_mark_paid(invoice)
        return True
    if invoice_payment_blockers(invoice):
        return False
    table = RateTable()
    try:
        debit_legs, quote, debited = customer_debit_legs(invoice.customer, due, invoice.currency, table)
    except RateError:
        return False
    settle_legs, _quote = invoice_settlement_legs(invoice, table)
    holding = settle_legs[0][0]
    legs = debit_legs + [(holding, due)] + settle_legs
    account = ledger_accounts_lock([leg[0] for leg in legs])[debit_legs[0][0].pk]
    if account.balance + account.credit_limit < debited:
        return False
    ledger_post(
        idempotency_key=f"invoice:{invoice.pk}:settle", kind=LedgerTransaction.Kind.CHARGE, legs=legs,
        invoice=invoice, reference=invoice.reference, created_by=actor, quote=quote,
        memo=_("Payment of invoice %(number)s") % {"number": invoice.number},
    )
    invoice_mark_paid(invoice)
    return True


@transaction.atomic
def invoice_pay_from_balance(*, invoice: Invoice, actor=None) -> bool:
    """THE pay-from-balance function (web and workers): pays the whole invoice from the balance if
    it covers it and returns True; otherwise changes nothing and returns False."""
    invoice = invoice_lock(invoice)
    if invoice.kind == Invoice.Kind.ADVANCE or not invoice.is_open:
        return False
    return invoice_pay_locked_from_balance(invoice, actor)


@transaction.atomic
def invoice_apply_balance(*, invoice: Invoice, actor=None) -> Decimal:
    """Partial application: move what the balance holds onto the invoice (amount in invoice
    currency); pays it if that covers the rest. Returns the amount applied."""
    invoice = invoice_lock(invoice)
    if invoice.kind == Invoice.Kind.ADVANCE or not invoice.is_open:
        raise BillingError(_("This invoice cannot be paid from the balance."))
    invoice_payment_gate_check(invoice)
    if invoice_pay_locked_from_balance(invoice, actor):
        return invoice.amount_paid
    account = ledger_accounts_lock([customer_account(customer=invoice.customer, currency=customer_currency_lock(invoice.customer))])
    account = next(iter(account.values()))
    if account.balance <= 0:
        raise InsufficientFunds(_("Your balance is empty."))
    table = RateTable()
    if account.currency == invoice.currency:
        applied = min(account.balance, invoice.amount_due)
    else:
        quote = table.quote(account.currency, invoice.currency)
        applied = min(quantize_down(account.balance * quote.rate, invoice.currency), invoice.amount_due)
    if applied <= 0:
        raise InsufficientFunds(_("Your balance is empty."))
    debit_legs, quote, _debited = customer_debit_legs(invoice.customer, applied, invoice.currency, table)
    holding = provider_account(kind=LedgerAccount.Kind.HOLDING, currency=invoice.currency)
    n = invoice.ledger_transactions.count() + 1
    ledger_post(
        idempotency_key=f"invoice:{invoice.pk}:apply:{n}", kind=LedgerTransaction.Kind.CHARGE,
        legs=debit_legs + [(holding, applied)], invoice=invoice, reference=invoice.reference, created_by=actor, quote=quote,
        memo=_("Balance applied to invoice %(number)s") % {"number": invoice.number},
    )
    invoice.amount_paid += applied
    invoice.status = Invoice.Status.IN_PROGRESS
    invoice.save(update_fields=["amount_paid", "status"])
    return applied


@transaction.atomic
def invoice_cancel(*, invoice: Invoice, reason: str = "", actor=None) -> Invoice:
    """Cancel an open invoice; whatever was already applied to it goes back to the balance."""
    invoice = invoice_lock(invoice)
    if not invoice.is_open:
        raise BillingError(_("Only an unpaid invoice can be cancelled."))
    # What was paid on an advance invoice is on the balance already (credited when paid).
    if invoice.amount_paid > 0 and invoice.kind != Invoice.Kind.ADVANCE:
        table = RateTable()
        credit = customer_credit_legs(invoice.customer, invoice.amount_paid, invoice.currency, table)
        quote = credit.pop()
        holding = provider_account(kind=LedgerAccount.Kind.HOLDING, currency=invoice.currency)
        legs = [(holding, -invoice.amount_paid)] + credit
        ledger_accounts_lock([leg[0] for leg in legs])
        ledger_post(
            idempotency_key=f"invoice:{invoice.pk}:cancel", kind=LedgerTransaction.Kind.REVERSAL, legs=legs,
            invoice=invoice, created_by=actor, quote=quote,
            memo=_("Invoice %(number)s cancelled: applied amount returned") % {"number": invoice.number},
        )
    invoice.status = Invoice.Status.CANCELLED
    invoice.cancelled_at = timezone.now()
    invoice.cancel_reason = reason[:255]
    invoice.save(update_fields=["status", "cancelled_at", "cancel_reason"])
    if actor is not None and actor.is_staff:
        activity_record(action="billing.invoice_cancelled", customer=invoice.customer, actor=actor,
                        details={"invoice": invoice.number, "reason": reason}, visible_to_customer=True)
    return invoice


def invoice_topup_create(*, customer: Customer, amount: Decimal, currency: str, request_key: str = "") -> Invoice:
    """An advance-payment invoice for topping up the balance (amount already validated by the form).
    `request_key` (the form's token) makes a double submit return the first invoice, also when both
    requests race: the loser's insert hits the unique key, its savepoint (and invoice number) rolls back."""
    key = f"topup:{customer.pk}:{request_key}" if request_key else None
    try:
        with transaction.atomic():
            return invoice_issue(
                customer=customer, kind=Invoice.Kind.ADVANCE, currency=currency, idempotency_key=key,
                lines=[LineInput(description=_("Advance payment: balance top-up"), quantity=1, unit_price=quantize(amount, currency))],
            )
    except IntegrityError:
        existing = Invoice.objects.filter(idempotency_key=key, customer=customer).first() if key else None
        if existing is None:
            raise
        return existing


def invoice_topup_difference_create(*, customer: Customer, invoice: Invoice) -> Invoice | None:
    """An advance invoice for what the balance lacks to pay `invoice` (which auto-payment then pays once
    the advance is paid); None when the balance already covers it."""
    available = balance_in_currency(balance_of(customer), customer.currency, invoice.currency) or Decimal(0)
    difference = invoice.amount_due - max(available, Decimal(0))
    if difference <= 0:
        return None
    return invoice_topup_create(customer=customer, amount=difference, currency=invoice.currency)


@transaction.atomic
def invoice_payer_choose(*, invoice: Invoice, payer: Payer, actor=None, ip: str | None = None) -> Invoice:
    """Make the invoice out to `payer`: re-snapshot its details and recompute the tax by its country
    and type. Only before any money was applied; a paid invoice never changes."""
    invoice = invoice_lock(invoice)
    payer = Payer.objects.select_related("customer").get(pk=payer.pk)  # as stored: its tax evidence may be newer
    if payer.customer_id != invoice.customer_id:
        raise BillingError("Payer belongs to another customer.")
    if payer.archived_at is not None:
        raise BillingError(_("This payer is archived."))
    if invoice.status != Invoice.Status.UNPAID or invoice.amount_paid:
        raise BillingError(_("The payer can only be changed before the invoice is paid."), code="not_open")
    details = payer_details(payer)
    tax = NO_TAX if invoice.kind == Invoice.Kind.ADVANCE else tax_for_payer(payer)
    totals = invoice_totals(subtotal=invoice.subtotal, tax=tax, currency=invoice.currency)
    snapshot = payer_snapshot_fields(details)
    for field, value in snapshot.items():
        setattr(invoice, field, value)
    invoice.payer = payer
    invoice.tax_percent, invoice.tax_label, invoice.reverse_charge = tax.percent, tax.label, tax.reverse_charge
    invoice.tax_amount, invoice.total = totals.tax_amount, totals.total
    invoice.save(update_fields=["payer", "tax_percent", "tax_label", "reverse_charge", "tax_amount", "total", *snapshot])
    activity_record(action="billing.invoice_payer_chosen", customer=invoice.customer, actor=actor, ip=ip,
                    details={"invoice": invoice.number, "payer": details.label, "total": str(invoice.total)})
    return invoice
