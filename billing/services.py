"""Billing writes. Every function here runs under transaction.atomic and keeps one locking order
(docs/ARCHITECTURE.md, "Locking order"):

    gateway rows -> the invoice's owner (an order, via hooks.lock_invoice_owners) -> customer row (NO KEY UPDATE)
    -> document counter -> invoice rows (by pk) -> customer balance accounts (by pk) -> provider accounts (by pk)

Each business operation posts ONE ledger transaction whose accounts are all locked at once by
`_lock_accounts`, so two operations never wait on each other in opposite orders.
"""
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.selectors import customer_owner, payment_blockers
from accounts.services import activity_record
from notifications.services import notify as _notify  # module-level name: tests replace it

from . import hooks
from .models import (
    ZERO, Act, ActLine, ContractAcceptance, ContractVersion, CreditNote, Currency, DocumentCounter, Invoice, InvoiceLine,
    LedgerAccount, LedgerEntry, LedgerTransaction, Payer, Payment, RateRefreshError, RateSnapshot, TaxRate,
)
from .money import fits_minor_units, format_money, quantize, quantize_down
from .rates import EcbExchangeBackend, FeedError, FixedExchangeBackend, Quote, RateError, RateTable, base_currency

logger = logging.getLogger(__name__)

EU_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)


class BillingError(ValidationError):
    """A refused billing operation; the message is shown to the user as is."""


class InsufficientFunds(BillingError):
    pass


class PaymentConflict(BillingError):
    """The idempotency key was already used for a different payment."""


PAYER_UNVERIFIED = "payer_unverified"  # the blocker code of an unverified payer chosen on the invoice


def blockers_need_profile(blockers: list[dict]) -> bool:
    """True when something in the customer's profile (not only the invoice's payer) must be fixed."""
    return any(blocker["code"] != PAYER_UNVERIFIED for blocker in blockers)


class PaymentBlocked(BillingError):
    def __init__(self, blockers: list[dict]):
        # A payer's blocker says what to do itself; profile blockers are listed with links on the page.
        message = blockers[0]["message"] if blockers and not blockers_need_profile(blockers) else _("Complete your profile before paying.")
        super().__init__(message, code="payment_blocked")
        self.blockers = blockers


@dataclass
class LineInput:
    description: str
    quantity: int
    unit_price: Decimal
    reference: str = ""


# --- ledger ------------------------------------------------------------------------------------

def customer_account(*, customer: Customer, currency: str | None = None) -> LedgerAccount:
    currency = currency or customer.currency
    account, _created = LedgerAccount.objects.get_or_create(
        code=f"customer:{customer.pk}:{currency}",
        defaults={"kind": LedgerAccount.Kind.CUSTOMER, "customer": customer, "currency": currency},
    )
    return account


def provider_account(*, kind: str, currency: str, tag: str = "") -> LedgerAccount:
    code = ":".join(part for part in (kind, tag, currency) if part)
    account, _created = LedgerAccount.objects.get_or_create(code=code, defaults={"kind": kind, "currency": currency})
    return account


def _fx_accounts(*currencies: str) -> dict[str, LedgerAccount]:
    """The FX accounts of these currencies, created (on first use) in code order: two transactions
    creating the same pair in opposite orders would deadlock on the unique code."""
    return {currency: provider_account(kind=LedgerAccount.Kind.FX, currency=currency) for currency in sorted(set(currencies))}


def _lock_accounts(accounts) -> dict[int, LedgerAccount]:
    """Lock customer accounts then provider accounts, each in pk order (the deadlock-free order)."""
    ids = {a.pk for a in accounts}
    base = LedgerAccount.objects.filter(pk__in=ids).select_related("customer").order_by("pk")
    locked = list(base.filter(kind=LedgerAccount.Kind.CUSTOMER).select_for_update(of=("self",)))
    locked += list(base.exclude(kind=LedgerAccount.Kind.CUSTOMER).select_for_update(of=("self",)))
    return {a.pk: a for a in locked}


def ledger_post(
    *,
    idempotency_key: str,
    kind: str,
    legs: list[tuple[LedgerAccount, Decimal]],
    invoice: Invoice | None = None,
    payment: Payment | None = None,
    reference: str = "",
    memo: str = "",
    created_by=None,
    quote: Quote | None = None,
    alert_low_balance: bool = True,
) -> LedgerTransaction:
    """Append one balanced transaction and move the cached balances, all under row locks.
    `alert_low_balance=False` for postings that empty a balance on purpose (settling a deleted account)."""
    with transaction.atomic():
        legs = [(account, amount) for account, amount in legs if amount]
        locked = _lock_accounts([account for account, _amount in legs])
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for account, amount in legs:
            currency = locked[account.pk].currency
            if not fits_minor_units(amount, currency):
                raise ValueError(f"{amount} is not rounded to {currency} minor units")
            totals[currency] += amount
        unbalanced = {cur: total for cur, total in totals.items() if total != 0}
        if unbalanced or not legs:
            raise ValueError(f"Unbalanced or empty ledger transaction {idempotency_key}: {unbalanced}")
        tx = LedgerTransaction.objects.create(
            idempotency_key=idempotency_key, kind=kind, invoice=invoice, payment=payment, reference=reference,
            memo=memo[:255], created_by=created_by if created_by is not None and created_by.pk else None,
            rate=quote.rate if quote else None, rate_from=quote.source if quote else "",
            rate_to=quote.target if quote else "", rate_as_of=quote.as_of if quote else None,
        )
        entries = []
        for account, amount in legs:
            account = locked[account.pk]
            account.balance += amount
            entries.append(LedgerEntry(transaction=tx, account=account, amount=amount, currency=account.currency, balance_after=account.balance))
        for account in locked.values():
            if account.kind == LedgerAccount.Kind.CUSTOMER:
                if account.balance < -account.credit_limit:
                    raise InsufficientFunds(_("The balance is not enough for this operation."), code="insufficient_funds")
                if alert_low_balance:
                    _low_balance_update(account)
            LedgerAccount.objects.filter(pk=account.pk).update(
                balance=account.balance, low_balance_alerted=account.low_balance_alerted,
                low_balance_crossings=account.low_balance_crossings,
            )
        LedgerEntry.objects.bulk_create(entries)
        return tx


def _low_balance_update(account: LedgerAccount) -> None:
    """One alert per crossing below the customer's threshold; re-armed when the balance is back above."""
    customer = account.customer
    threshold = customer.low_balance_threshold
    if threshold <= 0 or account.currency != customer.currency:
        return
    if account.balance < threshold and not account.low_balance_alerted:
        account.low_balance_alerted = True
        account.low_balance_crossings += 1
        lang = customer.language
        _notify(
            customer=customer, kind="low_balance",
            context={"balance": format_money(account.balance, account.currency, lang), "threshold": format_money(threshold, account.currency, lang)},
            link=reverse("billing:balance"), dedupe_key=f"low_balance:{account.pk}:{account.low_balance_crossings}",
        )
    elif account.balance >= threshold and account.low_balance_alerted:
        account.low_balance_alerted = False


def low_balance_sweep() -> int:
    """Catch crossings not caused by a posting (e.g. the threshold changed). Returns alerts sent."""
    needs_update = (Q(balance__lt=F("customer__low_balance_threshold")) & Q(low_balance_alerted=False)) | (
        Q(balance__gte=F("customer__low_balance_threshold")) & Q(low_balance_alerted=True)
    )
    candidates = list(
        LedgerAccount.objects.filter(
            kind=LedgerAccount.Kind.CUSTOMER, currency=F("customer__currency"), customer__low_balance_threshold__gt=0,
        ).filter(needs_update).values_list("pk", flat=True)
    )
    sent = 0
    for pk in candidates:
        with transaction.atomic():
            account = _lock_accounts([LedgerAccount(pk=pk)])[pk]
            before = account.low_balance_crossings
            _low_balance_update(account)
            LedgerAccount.objects.filter(pk=pk).update(
                low_balance_alerted=account.low_balance_alerted, low_balance_crossings=account.low_balance_crossings
            )
            sent += account.low_balance_crossings - before
    return sent


# --- tax and numbering -------------------------------------------------------------------------

@dataclass(frozen=True)
class TaxDecision:
    percent: Decimal
    label: str
    reverse_charge: bool = False


def tax_for(customer: Customer) -> TaxDecision:
    """Tax rule: the staff rate for (country, profile type), else (country, any), else none.

    A rate marked reverse charge applies only to a company that staff verified and that has a VAT
    number: it is charged 0% with a reverse-charge note. Otherwise the next rate in line applies.
    """
    is_verified_company = (
        customer.profile_type == Customer.ProfileType.COMPANY
        and customer.verification_status == Customer.Verification.VERIFIED
        and bool(customer.company_vat_number.strip())
    )
    return _tax_decision(customer.country, customer.profile_type, is_verified_company)


def tax_for_payer(payer: "Payer") -> TaxDecision:
    """The same tax rule applied to a payer's country, type and verification."""
    details = payer_details(payer)
    return _tax_decision(details.country, details.payer_type, details.is_verified_company and bool(details.vat_number.strip()))


def _tax_decision(country: str, profile_type: str, is_verified_company_with_vat: bool) -> TaxDecision:
    rates = {r.profile_type: r for r in TaxRate.objects.filter(country=country.upper())} if country else {}
    for profile in (profile_type, TaxRate.Profile.ANY):
        rate = rates.get(profile)
        if rate is None:
            continue
        if rate.reverse_charge:
            if is_verified_company_with_vat:
                return TaxDecision(Decimal("0"), _("Reverse charge: VAT to be accounted for by the recipient"), True)
            continue
        return TaxDecision(rate.percent, f"{rate.label} {rate.percent.normalize()}%")
    return TaxDecision(Decimal("0"), "")


def provider_today() -> dt.date:
    """Today in the provider's time zone (`TIME_ZONE`): document series, acts and months follow the
    provider's calendar, never the time zone a customer's request activated."""
    return timezone.localdate(timezone=timezone.get_default_timezone())


def _next_document_number(series: str) -> tuple[int, int]:
    """(year, sequence) from a counter row locked until commit: gap-free, unlike a sequence. The year
    is the provider's, so a web request and a job at the same moment number in the same series."""
    year = provider_today().year
    DocumentCounter.objects.get_or_create(series=series, year=year)
    counter = DocumentCounter.objects.select_for_update().get(series=series, year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return year, counter.last_number


def _payer_snapshot(customer: Customer) -> dict:
    return _snapshot_fields(_profile_details(customer))


def _snapshot_fields(details: "PayerDetails") -> dict:
    return {
        "payer_name": details.name, "payer_company": details.company, "payer_address": details.address,
        "payer_country": details.country, "payer_vat_number": details.vat_number, "payer_email": details.email,
    }


def _validate_currency_code(currency: str) -> None:
    if currency not in settings.CURRENCIES:
        raise BillingError(_("Unsupported currency %(code)s.") % {"code": currency}, code="currency")


# --- invoices ----------------------------------------------------------------------------------

@transaction.atomic
def invoice_issue(
    *,
    customer: Customer,
    kind: str,
    lines: list[LineInput],
    currency: str | None = None,
    idempotency_key: str | None = None,
    reference: str = "",
) -> Invoice:
    """Issue a numbered invoice with tax by the customer's country/profile and a payer snapshot."""
    if idempotency_key:
        existing = Invoice.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.customer_id != customer.pk:
                raise BillingError("Idempotency key belongs to another customer.")
            return existing
    if kind not in Invoice.Kind.values:
        raise BillingError(f"Unknown invoice kind {kind!r}.")
    currency = currency or customer.currency
    _validate_currency_code(currency)
    if not lines:
        raise BillingError(_("An invoice needs at least one line."))
    prepared = []
    for position, line in enumerate(lines):
        if not isinstance(line.unit_price, Decimal) or not line.unit_price.is_finite() or line.unit_price < 0:
            raise BillingError(_("Unit price must be a non-negative amount."))
        if not isinstance(line.quantity, int) or line.quantity < 1:
            raise BillingError(_("Quantity must be a positive whole number."))
        prepared.append(InvoiceLine(
            position=position, description=line.description[:255], quantity=line.quantity,
            unit_price=line.unit_price, amount=quantize(line.unit_price * line.quantity, currency), reference=line.reference,
        ))
    subtotal = sum((line.amount for line in prepared), ZERO)
    # Advance payments only fill the balance; tax is charged on the services the balance pays for.
    tax = TaxDecision(Decimal("0"), "") if kind == Invoice.Kind.ADVANCE else tax_for(customer)
    tax_amount = quantize(subtotal * tax.percent / 100, currency)
    year, sequence = _next_document_number("INV")
    invoice = Invoice(
        number=f"{year}-{sequence:06d}", year=year, sequence=sequence, customer=customer, kind=kind, currency=currency,
        subtotal=subtotal, tax_percent=tax.percent, tax_label=tax.label, reverse_charge=tax.reverse_charge,
        tax_amount=tax_amount, total=subtotal + tax_amount, reference=reference, idempotency_key=idempotency_key,
        **_payer_snapshot(customer),
    )
    invoice.full_clean(exclude=["idempotency_key"])
    invoice.save()
    for line in prepared:
        line.invoice = invoice
    InvoiceLine.objects.bulk_create(prepared)
    link = reverse("billing:invoice_detail", args=[invoice.pk])
    _notify(
        customer=customer, kind="invoice_issued", link=link, dedupe_key=f"invoice:{invoice.pk}:issued",
        context={**hooks.invoice_email_context(invoice),
                 "invoice_number": invoice.number, "amount": format_money(invoice.total, currency, customer.language),
                 "kind": invoice.kind, "invoice_id": invoice.pk},
    )
    return invoice


def _lock_invoice(invoice: Invoice) -> Invoice:
    """Lock an invoice row, after the row that owns it (an order; see `hooks.lock_invoice_owners`)."""
    hooks.lock_invoice_owners(invoice)
    return Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)


def _settlement_legs(invoice: Invoice, table: RateTable) -> tuple[list, Quote | None]:
    """Legs that take the invoice's total out of holding and recognise it: revenue and tax for a
    service invoice; the customer's balance (converted to the account currency) for an advance."""
    cur = invoice.currency
    legs = [(provider_account(kind=LedgerAccount.Kind.HOLDING, currency=cur), -invoice.total)]
    quote = None
    if invoice.kind == Invoice.Kind.ADVANCE:
        legs += _credit_customer_legs(invoice.customer, invoice.total, cur, table)
        quote = legs.pop()
    else:
        legs.append((provider_account(kind=LedgerAccount.Kind.REVENUE, currency=cur), invoice.subtotal))
        if invoice.tax_amount:
            legs.append((provider_account(kind=LedgerAccount.Kind.TAX, currency=cur), invoice.tax_amount))
    return legs, quote


def _credit_customer_legs(customer: Customer, amount: Decimal, currency: str, table: RateTable) -> list:
    """Legs crediting `amount` `currency` to the customer's balance through FX when the account
    currency differs. The last item is the Quote used (or None)."""
    account = customer_account(customer=customer)
    if currency == account.currency:
        return [(account, amount), None]
    quote = table.quote(currency, account.currency)
    converted = quantize(amount * quote.rate, account.currency)
    fx = _fx_accounts(currency, account.currency)
    return [
        (fx[currency], amount),
        (fx[account.currency], -converted),
        (account, converted),
        quote,
    ]


def _debit_customer_legs(customer: Customer, amount: Decimal, currency: str, table: RateTable) -> tuple[list, Quote | None, Decimal]:
    """Legs taking the equivalent of `amount` `currency` from the balance: (legs, quote, debited)."""
    account = customer_account(customer=customer)
    if currency == account.currency:
        return [(account, -amount)], None, amount
    quote = table.quote(currency, account.currency)
    debited = quantize(amount * quote.rate, account.currency)
    fx = _fx_accounts(currency, account.currency)
    return [
        (account, -debited),
        (fx[account.currency], debited),
        (fx[currency], -amount),
    ], quote, debited


def _mark_paid(invoice: Invoice) -> None:
    invoice.amount_paid = invoice.total
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["amount_paid", "status", "paid_at"])
    for handler in hooks.invoice_paid_handlers(invoice.kind):
        handler(invoice)


def _pay_locked_from_balance(invoice: Invoice, actor=None) -> bool:
    """Pay a locked open invoice in full from the balance, or change nothing."""
    due = invoice.amount_due
    if due == 0:
        _mark_paid(invoice)
        return True
    table = RateTable()
    try:
        debit_legs, quote, debited = _debit_customer_legs(invoice.customer, due, invoice.currency, table)
    except RateError:
        return False
    settle_legs, _quote = _settlement_legs(invoice, table)
    holding = settle_legs[0][0]
    legs = debit_legs + [(holding, due)] + settle_legs
    account = _lock_accounts([leg[0] for leg in legs])[debit_legs[0][0].pk]
    if account.balance + account.credit_limit < debited:
        return False
    ledger_post(
        idempotency_key=f"invoice:{invoice.pk}:settle", kind=LedgerTransaction.Kind.CHARGE, legs=legs,
        invoice=invoice, reference=invoice.reference, created_by=actor, quote=quote,
        memo=_("Payment of invoice %(number)s") % {"number": invoice.number},
    )
    _mark_paid(invoice)
    return True


@transaction.atomic
def invoice_pay_from_balance(*, invoice: Invoice, actor=None) -> bool:
    """THE pay-from-balance function (web and workers): pays the whole invoice from the balance if
    it covers it and returns True; otherwise changes nothing and returns False."""
    invoice = _lock_invoice(invoice)
    if invoice.kind == Invoice.Kind.ADVANCE or not invoice.is_open:
        return False
    return _pay_locked_from_balance(invoice, actor)


@transaction.atomic
def invoice_apply_balance(*, invoice: Invoice, actor=None) -> Decimal:
    """Partial application: move what the balance holds onto the invoice (amount in invoice
    currency); pays it if that covers the rest. Returns the amount applied."""
    invoice = _lock_invoice(invoice)
    if invoice.kind == Invoice.Kind.ADVANCE or not invoice.is_open:
        raise BillingError(_("This invoice cannot be paid from the balance."))
    if _pay_locked_from_balance(invoice, actor):
        return invoice.amount_paid
    account = _lock_accounts([customer_account(customer=invoice.customer)])
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
    debit_legs, quote, _debited = _debit_customer_legs(invoice.customer, applied, invoice.currency, table)
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
    invoice = _lock_invoice(invoice)
    if not invoice.is_open:
        raise BillingError(_("Only an unpaid invoice can be cancelled."))
    if invoice.amount_paid > 0:
        table = RateTable()
        credit = _credit_customer_legs(invoice.customer, invoice.amount_paid, invoice.currency, table)
        quote = credit.pop()
        holding = provider_account(kind=LedgerAccount.Kind.HOLDING, currency=invoice.currency)
        legs = [(holding, -invoice.amount_paid)] + credit
        _lock_accounts([leg[0] for leg in legs])
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


def topup_invoice_create(*, customer: Customer, amount: Decimal, currency: str, request_key: str = "") -> Invoice:
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
    from .selectors import balance_in_currency, balance_of

    available = balance_in_currency(balance_of(customer), customer.currency, invoice.currency) or Decimal(0)
    difference = invoice.amount_due - max(available, Decimal(0))
    if difference <= 0:
        return None
    return topup_invoice_create(customer=customer, amount=difference, currency=invoice.currency)


def payment_gate_check(customer: Customer) -> None:
    """Raise PaymentBlocked while the profile/verification gate (accounts) says no."""
    blockers = payment_blockers(customer)
    if blockers:
        raise PaymentBlocked(blockers)


# --- payments ----------------------------------------------------------------------------------

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
    _validate_currency_code(currency)
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
    table = RateTable()
    clearing = provider_account(kind=LedgerAccount.Kind.CLEARING, currency=payment.currency, tag=payment.gateway or payment.method)
    legs: list = [(clearing, -payment.amount)]
    quote = None
    to_balance = payment.amount
    invoice = None
    if payment.invoice_id:
        invoice = _lock_invoice(payment.invoice)
        if invoice.is_open:
            applied = min(payment.amount, invoice.amount_due)
            to_balance = payment.amount - applied
            holding = provider_account(kind=LedgerAccount.Kind.HOLDING, currency=invoice.currency)
            legs.append((holding, applied))
            if applied == invoice.amount_due:
                settle, quote = _settlement_legs(invoice, table)
                legs += settle
    if to_balance:
        credit = _credit_customer_legs(customer, to_balance, payment.currency, table)
        quote = credit.pop() or quote
        legs += credit
    if quote is not None:
        account = customer_account(customer=customer)
        credited = next(amount for acc, amount in legs if acc.pk == account.pk)
        payment.rate, payment.rate_as_of = quote.rate, quote.as_of
        payment.credited_amount, payment.credited_currency = credited, account.currency
        payment.save(update_fields=["rate", "rate_as_of", "credited_amount", "credited_currency"])
    _lock_accounts([leg[0] for leg in legs])
    label = hooks.payment_method_label(payment.method)
    memo = (_("Payment for invoice %(number)s (%(method)s)") % {"number": invoice.number, "method": label}
            if invoice else _("Balance top-up (%(method)s)") % {"method": label})
    ledger_post(idempotency_key=f"payment:{payment.pk}", kind=LedgerTransaction.Kind.TOPUP, legs=legs,
                invoice=invoice, payment=payment, created_by=actor, quote=quote, memo=memo)
    if invoice is not None and invoice.is_open:
        if invoice.amount_paid + (payment.amount - to_balance) == invoice.total:
            _mark_paid(invoice)
        else:
            invoice.amount_paid += payment.amount - to_balance
            invoice.status = Invoice.Status.IN_PROGRESS
            invoice.save(update_fields=["amount_paid", "status"])
    lang = customer.language
    with translation.override(lang):
        method_label = str(hooks.payment_method_label(payment.method))
    balance_now = customer_account(customer=customer).balance
    _notify(customer=customer, kind="payment_received", link=reverse("billing:payment_detail", args=[payment.pk]),
            dedupe_key=f"payment:{payment.pk}",
            context={"amount": format_money(payment.amount, payment.currency, lang), "method": method_label,
                     "balance": format_money(balance_now, customer.currency, lang), "invoice": invoice.number if invoice else ""})
    balance_grew = bool(to_balance) or (invoice is not None and invoice.kind == Invoice.Kind.ADVANCE)
    if balance_grew:
        # Its own transaction after commit: it locks invoices, which must come before accounts.
        transaction.on_commit(lambda: _autopay_after_commit(customer.pk))


def _autopay_after_commit(customer_id: int) -> None:
    try:
        customer_autopay_open_invoices(customer=Customer.objects.get(pk=customer_id))
    except Exception:  # the payment is committed; the periodic job retries
        logger.exception("Auto-payment from balance failed for customer %s", customer_id)


@transaction.atomic
def customer_autopay_open_invoices(*, customer: Customer, actor=None) -> int:
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
            invoice = (Invoice.objects.select_for_update(skip_locked=True).select_related("customer")
                       .filter(pk=candidate.pk, status=Invoice.Status.UNPAID).first())
            if invoice is not None and _pay_locked_from_balance(invoice, actor):
                paid += 1
    return paid


# --- staff corrections -------------------------------------------------------------------------

@transaction.atomic
def credit_note_issue(*, invoice: Invoice, reason: str, actor, amount: Decimal | None = None) -> CreditNote:
    """Refund (part of) a paid service invoice to the balance: reverses revenue and tax pro rata,
    credits the customer, and documents it with a credit note in its own series (CN-2026-000001).
    A full refund marks the invoice refunded."""
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    invoice = _lock_invoice(invoice)
    if invoice.status != Invoice.Status.PAID:
        raise BillingError(_("Only a paid invoice can be refunded."))
    if invoice.kind == Invoice.Kind.ADVANCE:
        # Advance money is already on the balance: refunding it to the balance would double it.
        raise BillingError(_("An advance payment is already on the balance."))
    already = sum((cn.amount for cn in invoice.credit_notes.all()), ZERO)
    refundable = invoice.total - already
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable or not fits_minor_units(amount, invoice.currency):
        raise BillingError(_("The refund must be between 0 and %(max)s.") % {"max": format_money(refundable, invoice.currency)})
    cur = invoice.currency
    tax_part = quantize(invoice.tax_amount * amount / invoice.total, cur) if invoice.total else ZERO
    table = RateTable()
    credit = _credit_customer_legs(invoice.customer, amount, cur, table)
    quote = credit.pop()
    legs = [(provider_account(kind=LedgerAccount.Kind.REVENUE, currency=cur), -(amount - tax_part))]
    if tax_part:
        legs.append((provider_account(kind=LedgerAccount.Kind.TAX, currency=cur), -tax_part))
    legs += credit
    _lock_accounts([leg[0] for leg in legs])
    year, sequence = _next_document_number("CN")
    number = f"CN-{year}-{sequence:06d}"
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
def balance_adjust(*, customer: Customer, amount: Decimal, reason: str, actor, idempotency_key: str | None = None) -> LedgerTransaction:
    """Staff manual credit (amount > 0) or debit (amount < 0) of the balance, with a reason."""
    account = customer_account(customer=customer)
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
        transaction.on_commit(lambda: _autopay_after_commit(customer.pk))
    return tx


# --- account deletion: settling the money ------------------------------------------------------

class DeletionSettlement:
    REFUND_BANK = "refund_bank"  # staff send the balance back by bank transfer
    WRITE_OFF = "write_off"      # the provider forgives / keeps it

    choices = ((REFUND_BANK, _("Refund by bank transfer")), (WRITE_OFF, _("Write off")))


@transaction.atomic
def customer_settle_for_deletion(*, customer: Customer, deletion_request, method: str, reason: str, actor) -> list[LedgerTransaction]:
    """Before staff approve an account deletion: cancel the customer's open invoices (what was applied
    returns to the balance), then bring every balance account to zero on the ledger, each its own
    transaction — a positive balance refunded by bank transfer (against the bank clearing account,
    kind refund: staff send the money) or written off (against `adjustment:writeoff:<CUR>`), a
    negative one always written off. Audited; keyed on the deletion request, the account and its last
    entry, so a double submit settles once and money arriving later is settled by the next run.

    Minimal path of issue 15 #15, to be unified with the refund/write-off ledger path of issue 15 #1."""
    if method not in (DeletionSettlement.REFUND_BANK, DeletionSettlement.WRITE_OFF):
        raise BillingError(_("Choose a refund or a write-off."), code="method")
    if not reason.strip():
        raise BillingError(_("A reason is required."), code="reason")
    if deletion_request.customer_id != customer.pk or deletion_request.status != deletion_request.Status.PENDING:
        raise BillingError(_("Only a pending deletion request of this customer can be settled."), code="request")
    # Lock order: owners of the invoices, the invoices, then the accounts.
    open_invoices = list(Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).order_by("pk"))
    for invoice in open_invoices:
        hooks.lock_invoice_owners(invoice)
    for invoice in Invoice.objects.select_for_update().filter(pk__in=[i.pk for i in open_invoices]).order_by("pk"):
        invoice_cancel(invoice=invoice, reason="account deletion", actor=actor)
    accounts = list(LedgerAccount.objects.filter(customer=customer, kind=LedgerAccount.Kind.CUSTOMER).order_by("pk"))
    counter = {}
    for account in accounts:  # created before anything is locked
        counter[account.pk] = {
            DeletionSettlement.REFUND_BANK: provider_account(kind=LedgerAccount.Kind.CLEARING, currency=account.currency,
                                                             tag="bank_transfer"),
            DeletionSettlement.WRITE_OFF: provider_account(kind=LedgerAccount.Kind.ADJUSTMENT, currency=account.currency,
                                                           tag="writeoff"),
        }
    locked = _lock_accounts(accounts + [a for pair in counter.values() for a in pair.values()])
    posted = []
    for account in accounts:
        balance = locked[account.pk].balance
        if balance == 0:
            continue
        how = method if balance > 0 else DeletionSettlement.WRITE_OFF
        last_entry = LedgerEntry.objects.filter(account=account).order_by("-pk").values_list("pk", flat=True).first()
        memo = (_("Balance refunded by bank transfer on account deletion: %(reason)s") if how == DeletionSettlement.REFUND_BANK
                else _("Balance written off on account deletion: %(reason)s")) % {"reason": reason.strip()}
        posted.append(ledger_post(
            idempotency_key=f"deletion-settlement:{deletion_request.pk}:{account.pk}:{last_entry}",
            kind=LedgerTransaction.Kind.REFUND if how == DeletionSettlement.REFUND_BANK else LedgerTransaction.Kind.ADJUSTMENT,
            legs=[(account, -balance), (counter[account.pk][how], balance)], reference=f"deletion:{deletion_request.pk}",
            memo=memo[:255], created_by=actor, alert_low_balance=False,
        ))
        activity_record(action="billing.deletion_settled", customer=customer, actor=actor, visible_to_customer=False,
                        details={"method": how, "amount": str(balance), "currency": account.currency, "reason": reason.strip()})
    return posted


# --- account currency --------------------------------------------------------------------------

@dataclass(frozen=True)
class CurrencyChangePreview:
    old_currency: str
    new_currency: str
    old_balance: Decimal
    new_balance: Decimal
    quote: Quote


def account_currency_change_preview(*, customer: Customer, currency: str) -> CurrencyChangePreview:
    if currency == customer.currency:
        raise BillingError(_("This is already your account currency."))
    if not Currency.objects.filter(code=currency, enabled=True).exists():
        raise BillingError(_("This currency is not available."))
    balance = customer_account(customer=customer).balance
    if balance < 0:
        raise BillingError(_("Settle the negative balance before changing the currency."))
    quote = RateTable().quote(customer.currency, currency)
    return CurrencyChangePreview(customer.currency, currency, balance, quantize(balance * quote.rate, currency), quote)


@transaction.atomic
def account_currency_change(*, customer: Customer, currency: str, expected_rate: Decimal, actor=None) -> LedgerTransaction | None:
    """Convert the balance into `currency` through the FX accounts at the rate the customer confirmed."""
    # NO KEY UPDATE: serialises currency changes without blocking the foreign-key checks (KEY SHARE)
    # that payments, notifications and ledger postings of this customer make while holding account
    # locks - a plain FOR UPDATE here deadlocked with them (docs/ARCHITECTURE.md, lock order).
    customer = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
    preview = account_currency_change_preview(customer=customer, currency=currency)
    if preview.quote.rate != expected_rate:
        raise BillingError(_("The exchange rate has changed. Review the new amount and confirm again."), code="rate_changed")
    old = customer_account(customer=customer)
    new = customer_account(customer=customer, currency=currency)
    # Every account is created before any is locked: creating one while holding account locks waits
    # on a concurrent creator of the same code, which may be waiting for our locks.
    fx = _fx_accounts(old.currency, currency)
    fx_old, fx_new = fx[old.currency], fx[currency]
    locked = _lock_accounts([old, new, fx_old, fx_new])
    balance = locked[old.pk].balance
    tx = None
    if balance < 0:
        raise BillingError(_("Settle the negative balance before changing the currency."))
    if balance > 0:
        converted = quantize(balance * preview.quote.rate, currency)
        legs = [(old, -balance), (fx_old, balance), (fx_new, -converted), (new, converted)]
        tx = ledger_post(
            idempotency_key=f"conversion:{customer.pk}:{old.currency}:{currency}:{timezone.now().timestamp()}",
            kind=LedgerTransaction.Kind.CONVERSION, legs=legs, created_by=actor, quote=preview.quote,
            memo=_("Account currency changed from %(old)s to %(new)s") % {"old": old.currency, "new": currency},
        )
    Customer.objects.filter(pk=customer.pk).update(currency=currency)
    activity_record(action="billing.currency_changed", customer=customer, actor=actor,
                    details={"from": old.currency, "to": currency, "rate": str(preview.quote.rate)})
    return tx


# --- exchange rates ----------------------------------------------------------------------------

def rates_refresh_ecb(*, url: str | None = None) -> int:
    """Fetch the ECB feed and update ECB-sourced currencies. Returns how many rates were updated.
    A fetch/parse failure records a RateRefreshError and leaves every rate as it was."""
    backend = EcbExchangeBackend(url=url)
    try:
        rates = backend.get_rates()
    except FeedError as exc:
        RateRefreshError.objects.create(source=Currency.RateSource.ECB, url=backend.url, message=str(exc))
        logger.warning("ECB rate refresh failed: %s", exc)
        return 0
    return rates_apply_ecb(rates=rates, feed_date=backend.feed_date)


@transaction.atomic
def rates_apply_ecb(*, rates: dict[str, Decimal], feed_date) -> int:
    """Make parsed ECB rates current for ECB-sourced currencies, with a snapshot each."""
    now = timezone.now()
    updated = 0
    # djmoney's own Rate table (convert_money()), overwritten in place as djmoney does.
    _djmoney_store(EcbExchangeBackend.name, rates)
    for currency in Currency.objects.select_for_update().filter(rate_source=Currency.RateSource.ECB, code__in=rates):
        value = rates[currency.code]
        RateSnapshot.objects.create(currency=currency.code, base_currency=base_currency(), value=value,
                                    source=Currency.RateSource.ECB, feed_date=feed_date)
        currency.rate, currency.rate_updated_at, currency.rate_feed_date = value, now, feed_date
        currency.save(update_fields=["rate", "rate_updated_at", "rate_feed_date"])
        updated += 1
    return updated


def _djmoney_store(backend_name: str, rates: dict[str, Decimal]) -> None:
    from djmoney.contrib.exchange.models import ExchangeBackend, Rate

    backend, _created = ExchangeBackend.objects.update_or_create(name=backend_name, defaults={"base_currency": base_currency()})
    Rate.objects.bulk_create([Rate(currency=c, value=v, backend=backend) for c, v in rates.items()],
                             update_conflicts=True, unique_fields=["currency", "backend"], update_fields=["value"])


@transaction.atomic
def currency_set_fixed_rate(*, code: str, rate: Decimal, actor=None) -> Currency:
    """Staff override: a fixed rate (units per 1 base currency) that does not go stale."""
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise BillingError(_("The rate must be a positive number."))
    currency = Currency.objects.select_for_update().get(code=code)
    currency.rate_source = Currency.RateSource.FIXED
    currency.rate, currency.rate_updated_at, currency.rate_feed_date = rate, timezone.now(), None
    currency.save(update_fields=["rate_source", "rate", "rate_updated_at", "rate_feed_date"])
    RateSnapshot.objects.create(currency=code, base_currency=base_currency(), value=rate,
                                source=Currency.RateSource.FIXED, created_by=actor)
    _djmoney_store(FixedExchangeBackend.name, FixedExchangeBackend().get_rates())
    if actor is not None:
        activity_record(action="billing.fixed_rate_set", actor=actor, visible_to_customer=False,
                        details={"currency": code, "rate": str(rate)})
    return currency


# --- payers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PayerDetails:
    """A payer's effective details (the profile payer's come from the customer profile)."""

    payer_type: str
    name: str
    company: str
    registration_number: str
    vat_number: str
    address: str
    country: str
    email: str
    verification_status: str
    verification_note: str

    @property
    def is_company(self) -> bool:
        return self.payer_type == Payer.Type.COMPANY

    @property
    def is_verified_company(self) -> bool:
        return self.is_company and self.verification_status == Payer.Verification.VERIFIED

    @property
    def label(self) -> str:
        return self.company or self.name

    def as_dict(self) -> dict:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def _address(street: str, postcode: str, city: str, country: str) -> str:
    return "\n".join(p for p in (street, " ".join(p for p in (postcode, city) if p), country) if p)


def _profile_details(customer: Customer) -> PayerDetails:
    owner = customer_owner(customer=customer)
    is_company = customer.profile_type == Customer.ProfileType.COMPANY
    return PayerDetails(
        payer_type=Payer.Type.COMPANY if is_company else Payer.Type.PRIVATE,
        name=(owner.get_full_name() or owner.username) if owner else "",
        company=customer.company_name if is_company else "",
        registration_number=customer.company_registration_number if is_company else "",
        vat_number=customer.company_vat_number if is_company else "",
        address=_address(customer.street, customer.postcode, customer.city, customer.country),
        country=customer.country,
        email=customer.email_billing or (owner.email if owner else ""),
        verification_status=customer.verification_status,
        verification_note=customer.verification_note,
    )


def payer_details(payer: Payer) -> PayerDetails:
    if payer.is_profile:
        return _profile_details(payer.customer)
    is_company = payer.payer_type == Payer.Type.COMPANY
    return PayerDetails(
        payer_type=payer.payer_type, name=payer.name, company=payer.company_name if is_company else "",
        registration_number=payer.registration_number if is_company else "",
        vat_number=payer.vat_number if is_company else "",
        address=_address(payer.street, payer.postcode, payer.city, payer.country), country=payer.country,
        email=payer.email, verification_status=payer.verification_status, verification_note=payer.verification_note,
    )


def payer_profile_get_or_create(*, customer: Customer) -> Payer:
    """The customer's default payer, which mirrors the profile; created on first use."""
    payer, _created = Payer.objects.get_or_create(customer=customer, is_profile=True)
    return payer


# Editing any of these on a company payer sends it back to staff verification.
PAYER_COMPANY_FIELDS = ("payer_type", "company_name", "registration_number", "vat_number", "street", "city", "postcode", "country")
PAYER_FIELDS = PAYER_COMPANY_FIELDS + ("name", "email")


def _payer_audit_details(payer: Payer) -> dict:
    return {"payer_id": payer.pk, "payer": payer.company_name or payer.name, "type": payer.payer_type,
            "status": payer.verification_status}


@transaction.atomic
def payer_create(*, customer: Customer, data: dict, actor=None, ip: str | None = None) -> Payer:
    """A new payer; a company starts awaiting staff verification."""
    payer = Payer(customer=customer, **{field: (data.get(field) or "").strip() for field in PAYER_FIELDS})
    if payer.payer_type == Payer.Type.COMPANY:
        payer.verification_status = Payer.Verification.PENDING
    payer.full_clean()
    payer.save()
    activity_record(action="billing.payer_created", customer=customer, actor=actor, ip=ip, details=_payer_audit_details(payer))
    return payer


@transaction.atomic
def payer_update(*, payer: Payer, data: dict, actor=None, ip: str | None = None) -> Payer:
    """Edit a payer. Changing a company's company fields (or turning a person into a company) sends it
    back to verification; a company turned into a private person needs none."""
    payer = Payer.objects.select_for_update().get(pk=payer.pk)
    if payer.is_profile:
        raise BillingError(_("The profile payer is edited in your profile settings."))
    if payer.archived_at:
        raise BillingError(_("An archived payer cannot be changed."))
    before = {field: getattr(payer, field) for field in PAYER_COMPANY_FIELDS}
    for field in PAYER_FIELDS:
        setattr(payer, field, (data.get(field) or "").strip())
    company_changed = any(getattr(payer, field) != value for field, value in before.items())
    if payer.payer_type == Payer.Type.PRIVATE:
        payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.NOT_REQUIRED, "", None
    elif company_changed or payer.verification_status == Payer.Verification.NOT_REQUIRED:
        payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.PENDING, "", None
    payer.full_clean()
    payer.save()
    activity_record(action="billing.payer_updated", customer=payer.customer, actor=actor, ip=ip, details=_payer_audit_details(payer))
    return payer


@transaction.atomic
def payer_delete(*, payer: Payer, actor=None, ip: str | None = None) -> bool:
    """Delete a payer no document refers to; otherwise archive it (documents keep pointing at it).
    Returns True when deleted, False when archived."""
    payer = Payer.objects.select_for_update().get(pk=payer.pk)
    if payer.is_profile:
        raise BillingError(_("The profile payer cannot be removed."))
    in_use = payer.invoices.exists() or payer.acts.exists() or payer.contract_acceptances.exists()
    details = _payer_audit_details(payer)
    if in_use:
        if payer.archived_at is None:
            payer.archived_at = timezone.now()
            payer.save(update_fields=["archived_at"])
        activity_record(action="billing.payer_archived", customer=payer.customer, actor=actor, ip=ip, details=details)
        return False
    payer.delete()
    activity_record(action="billing.payer_deleted", customer=payer.customer, actor=actor, ip=ip, details=details)
    return True


# Blanked when the account is erased; type, country and verification state carry no personal data.
PAYER_PERSONAL_FIELDS = ("name", "company_name", "registration_number", "vat_number", "street", "city", "postcode", "email",
                         "verification_note")


@transaction.atomic
def payers_anonymize(*, customer: Customer) -> int:
    """Account erasure: blank every payer's personal fields and archive it. The profile payer stores
    nothing (it mirrors the profile, which accounts anonymizes); invoices, acts and contract acceptances
    keep the details printed on them (legal records). Returns how many payers were anonymized."""
    payers = Payer.objects.select_for_update().filter(customer=customer, is_profile=False)
    ids = list(payers.values_list("pk", flat=True))
    now = timezone.now()
    Payer.objects.filter(pk__in=ids).update(**{field: "" for field in PAYER_PERSONAL_FIELDS})
    Payer.objects.filter(pk__in=ids, archived_at__isnull=True).update(archived_at=now)
    return len(ids)


def _payer_for_staff(payer: Payer) -> Payer:
    payer = Payer.objects.select_for_update().select_related("customer").get(pk=payer.pk)
    if payer.is_profile or payer.payer_type != Payer.Type.COMPANY:
        raise BillingError(_("Only company payers are verified."), code="not_company")
    return payer


@transaction.atomic
def payer_verify(*, payer: Payer, staff) -> Payer:
    payer = _payer_for_staff(payer)
    payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.VERIFIED, "", timezone.now()
    payer.save(update_fields=["verification_status", "verification_note", "verified_at"])
    activity_record(action="billing.payer_verified", customer=payer.customer, actor=staff, visible_to_customer=False,
                    details=_payer_audit_details(payer))
    return payer


@transaction.atomic
def payer_reject(*, payer: Payer, staff, reason: str) -> Payer:
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    payer = _payer_for_staff(payer)
    payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.REJECTED, reason.strip()[:255], None
    payer.save(update_fields=["verification_status", "verification_note", "verified_at"])
    activity_record(action="billing.payer_rejected", customer=payer.customer, actor=staff, visible_to_customer=False,
                    details={**_payer_audit_details(payer), "reason": payer.verification_note})
    return payer


def payer_blockers(payer: Payer) -> list[dict]:
    """Why paying for this payer is not possible yet (an unverified non-profile company; the profile
    payer's own verification is already one of accounts' payment_blockers)."""
    if payer.is_profile or payer.payer_type != Payer.Type.COMPANY or payer.verification_status == Payer.Verification.VERIFIED:
        return []
    url = reverse("billing:payers")
    if payer.verification_status == Payer.Verification.REJECTED:
        message = _("Verification of payer %(name)s was rejected: %(note)s") % {"name": payer.company_name, "note": payer.verification_note or "-"}
    else:
        message = _("Payer %(name)s is awaiting verification by our staff. Choose another payer or wait for the verification.") % {
            "name": payer.company_name}
    return [{"code": PAYER_UNVERIFIED, "field": "", "message": message, "url": url}]


def invoice_payment_blockers(invoice: Invoice) -> list[dict]:
    """Everything that stops paying this invoice: the customer's profile gate plus the chosen payer's."""
    blockers = list(payment_blockers(invoice.customer))
    if invoice.payer_id:
        blockers += payer_blockers(invoice.payer)
    return blockers


def invoice_payment_gate_check(invoice: Invoice) -> None:
    blockers = invoice_payment_blockers(invoice)
    if blockers:
        raise PaymentBlocked(blockers)


@transaction.atomic
def invoice_payer_choose(*, invoice: Invoice, payer: Payer, actor=None, ip: str | None = None) -> Invoice:
    """Make the invoice out to `payer`: re-snapshot its details and recompute the tax by its country
    and type. Only before any money was applied; a paid invoice never changes."""
    invoice = _lock_invoice(invoice)
    if payer.customer_id != invoice.customer_id:
        raise BillingError("Payer belongs to another customer.")
    if payer.archived_at is not None:
        raise BillingError(_("This payer is archived."))
    if invoice.status != Invoice.Status.UNPAID or invoice.amount_paid:
        raise BillingError(_("The payer can only be changed before the invoice is paid."), code="not_open")
    details = payer_details(payer)
    tax = TaxDecision(Decimal("0"), "") if invoice.kind == Invoice.Kind.ADVANCE else tax_for_payer(payer)
    tax_amount = quantize(invoice.subtotal * tax.percent / 100, invoice.currency)
    for field, value in _snapshot_fields(details).items():
        setattr(invoice, field, value)
    invoice.payer = payer
    invoice.tax_percent, invoice.tax_label, invoice.reverse_charge = tax.percent, tax.label, tax.reverse_charge
    invoice.tax_amount, invoice.total = tax_amount, invoice.subtotal + tax_amount
    invoice.save(update_fields=["payer", "tax_percent", "tax_label", "reverse_charge", "tax_amount", "total",
                                *_snapshot_fields(details)])
    activity_record(action="billing.invoice_payer_chosen", customer=invoice.customer, actor=actor, ip=ip,
                    details={"invoice": invoice.number, "payer": details.label, "total": str(invoice.total)})
    return invoice


# --- acts (monthly certificates of services rendered) -------------------------------------------

ACT_STATUSES = (Invoice.Status.PAID, Invoice.Status.REFUNDED)


def month_bounds(period) -> tuple:
    """[start, end) of the calendar month containing `period`, in the provider's time zone."""
    first = period.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    tz = timezone.get_default_timezone()
    return (timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz),
            timezone.make_aware(dt.datetime.combine(following, dt.time.min), tz))


def _act_invoices(*, customer_id: int, payer: Payer, currency: str, period):
    """The service invoices paid in the month for this payer and currency (invoices without a payer
    were made out to the profile)."""
    start, end = month_bounds(period)
    payer_q = Q(payer=payer) | Q(payer__isnull=True) if payer.is_profile else Q(payer=payer)
    return (Invoice.objects.filter(customer_id=customer_id, currency=currency, status__in=ACT_STATUSES,
                                   paid_at__gte=start, paid_at__lt=end)
            .exclude(kind=Invoice.Kind.ADVANCE).filter(payer_q).order_by("paid_at", "pk"))


class _NothingToIssue(Exception):
    """Rolls back act_issue's savepoint (and its number): the act exists or has no invoices."""


def act_issue(*, customer: Customer, payer: Payer, currency: str, period) -> Act | None:
    """The act for (customer, payer, currency, month), or None if it exists already or there is
    nothing to certify. The counter row is locked first, so concurrent runs are serialised and a
    run that finds the act made meanwhile rolls back its number: the series stays gap-free."""
    period = period.replace(day=1)
    try:
        with transaction.atomic():
            if Act.objects.filter(customer=customer, payer=payer, currency=currency, period=period).exists():
                raise _NothingToIssue
            year, sequence = _next_document_number("ACT")
            if Act.objects.filter(customer=customer, payer=payer, currency=currency, period=period).exists():
                raise _NothingToIssue  # made by a run that held the counter before us
            invoices = list(_act_invoices(customer_id=customer.pk, payer=payer, currency=currency, period=period)
                            .prefetch_related("lines"))
            if not invoices:
                raise _NothingToIssue
            details = payer_details(payer)
            subtotal = sum((i.subtotal for i in invoices), ZERO)
            tax_amount = sum((i.tax_amount for i in invoices), ZERO)
            snapshot = _snapshot_fields(details)
            snapshot.pop("payer_email")
            act = Act.objects.create(
                number=f"ACT-{year}-{sequence:06d}", year=year, sequence=sequence, customer=customer, payer=payer,
                currency=currency, period=period, subtotal=subtotal, tax_amount=tax_amount, total=subtotal + tax_amount,
                payer_registration_number=details.registration_number, **snapshot,
            )
            ActLine.objects.bulk_create([
                ActLine(act=act, position=n, invoice=invoice, date=invoice.paid_at, subtotal=invoice.subtotal,
                        tax_amount=invoice.tax_amount, total=invoice.total,
                        description=(f"{invoice.number}: " + "; ".join(line.description for line in invoice.lines.all()))[:500])
                for n, invoice in enumerate(invoices)
            ])
            return act
    except (_NothingToIssue, IntegrityError):
        return None


def acts_generate(*, period) -> list[Act]:
    """Issue the missing acts for the month containing `period` (beat job and `manage.py generate_acts`).
    Idempotent: an act exists at most once per (customer, payer, currency, month)."""
    start, end = month_bounds(period)
    if start.date() >= provider_today().replace(day=1):
        # An act for a running month would miss the rest of its charges: it is issued once, never amended.
        raise BillingError(_("Acts are issued after the month has ended."), code="month_not_over")
    groups = (
        Invoice.objects.filter(status__in=ACT_STATUSES, paid_at__gte=start, paid_at__lt=end, act_lines__isnull=True)
        .exclude(kind=Invoice.Kind.ADVANCE).values_list("customer_id", "payer_id", "currency").distinct()
        .order_by("customer_id", "payer_id", "currency")
    )
    made = []
    for customer_id, payer_id, currency in list(groups):
        customer = Customer.objects.get(pk=customer_id)
        payer = Payer.objects.get(pk=payer_id) if payer_id else payer_profile_get_or_create(customer=customer)
        act = act_issue(customer=customer, payer=payer, currency=currency, period=start.date())
        if act is not None:
            made.append(act)
    return made


def previous_month() -> dt.date:
    """First day of last month (the month the daily act job closes)."""
    return (provider_today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)


# --- contracts -----------------------------------------------------------------------------------

@transaction.atomic
def contract_version_publish(*, version: ContractVersion, staff) -> ContractVersion:
    """Publish a draft: from now on it is the agreement customers accept, and its text is frozen."""
    version = ContractVersion.objects.select_for_update().get(pk=version.pk)
    if version.published_at is None:
        version.published_at = timezone.now()
        version.save(update_fields=["published_at"])
        activity_record(action="billing.contract_published", actor=staff, visible_to_customer=False,
                        details={"version": version.version, "title": version.title})
    return version


@transaction.atomic
def contract_accept(*, payer: Payer, version: ContractVersion, user, ip: str | None = None) -> ContractAcceptance:
    """Record that `user` accepted `version` for `payer` (time, IP). Accepting twice returns the first."""
    if version.published_at is None:
        raise BillingError(_("This contract version is not published."))
    if payer.archived_at is not None:
        raise BillingError(_("This payer is archived."))
    existing = ContractAcceptance.objects.filter(payer=payer, version=version).first()
    if existing is not None:
        return existing
    details = payer_details(payer)
    try:
        with transaction.atomic():
            acceptance = ContractAcceptance.objects.create(
                customer_id=payer.customer_id, payer=payer, version=version, user=user if user is not None and user.pk else None,
                ip=ip or None, payer_label=details.label[:255], payer_details=details.as_dict(),
            )
    except IntegrityError:  # a concurrent double click won
        return ContractAcceptance.objects.get(payer=payer, version=version)
    activity_record(action="billing.contract_accepted", customer=payer.customer, actor=user, ip=ip,
                    details={"version": version.version, "payer": details.label})
    return acceptance
