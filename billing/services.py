"""Billing writes. Every function here runs under transaction.atomic and keeps one locking order
(docs/ARCHITECTURE.md, "Locking order"):

    gateway rows -> the invoice's owner (an order, via hooks.lock_invoice_owners) -> document counter
    -> invoice rows (by pk) -> customer row (FOR NO KEY UPDATE, `_account_currency_locked`)
    -> customer balance accounts (by pk) -> provider accounts (by pk)

Each business operation posts ONE ledger transaction whose accounts are all locked at once by
`_lock_accounts`, so two operations never wait on each other in opposite orders.
"""
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils import translation
from django.utils.translation import gettext as _

from core.calendar import provider_today

from accounts.models import Customer
from accounts.selectors import customer_owner, payment_blockers
from accounts.services import activity_record
from core.topbar import topbar_changed
from notifications.services import notify as _notify  # module-level name: tests replace it

from . import hooks, vat
from .funding import funding_record, posted_legs
from .models import (
    ZERO, Act, ActLine, ContractAcceptance, ContractVersion, CreditNote, Currency, DocumentCounter, Invoice, InvoiceLine,
    LedgerAccount, LedgerEntry, LedgerTransaction, Payer, Payment, PaymentRefund, RateRefreshError, RateSnapshot, TaxRate,
)
from .money import fits_minor_units, format_money, quantize, quantize_down
from .rates import RATE_PLACES, EcbExchangeBackend, FeedError, FixedExchangeBackend, Quote, RateError, RateTable, base_currency

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
    discount: bool = False  # a promo-code discount: unit_price <= 0


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
        funding_record(posted_legs(tx, entries, accounts=locked, invoice=invoice, payment=payment))
        topbar_changed(account.customer_id for account in locked.values() if account.kind == LedgerAccount.Kind.CUSTOMER)
        return tx


def _low_balance_update(account: LedgerAccount) -> None:
    """One alert per crossing below the customer's threshold; re-armed when the balance is back above."""
    customer = account.customer
    threshold = customer.low_balance_threshold
    if threshold <= 0 or account.currency != customer.currency or customer.low_balance_threshold_currency != account.currency:
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
            customer__low_balance_threshold_currency=F("currency"),
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


class TaxNotConfigured(BillingError):
    """No VAT rate is configured where the supply is taxed: refuse to invoice rather than charge 0%."""


def _seller_country() -> str:
    return (settings.BILLING_SELLER_COUNTRY or "").strip().upper()


def tax_for(customer: Customer) -> TaxDecision:
    """Tax rule for the customer's profile (see `_tax_decision`)."""
    is_verified_company = (
        customer.profile_type == Customer.ProfileType.COMPANY
        and customer.verification_status == Customer.Verification.VERIFIED
        and bool(customer.company_vat_number.strip())
    )
    return _tax_decision(customer.country, customer.profile_type, is_verified_company)


def payer_country_evidenced(payer: "Payer") -> bool:
    """Place-of-supply evidence: a payer's country counts for tax when it is the profile's country, or
    staff approved it (`payer_country_approve`), or staff verified the company (its address included)."""
    if payer.is_profile or payer.country.strip().upper() == payer.customer.country.strip().upper():
        return True
    if payer.payer_type == Payer.Type.COMPANY and payer.verification_status == Payer.Verification.VERIFIED:
        return True
    return payer.country_approved_at is not None


def tax_for_payer(payer: "Payer") -> TaxDecision:
    """The same tax rule applied to a payer's country, type and verification. Without evidence for the
    payer's country (a Dutch customer typing a "US" payer) the profile's country decides."""
    details = payer_details(payer)
    country = details.country if payer_country_evidenced(payer) else payer.customer.country
    return _tax_decision(country, details.payer_type, details.is_verified_company and bool(details.vat_number.strip()))


def _tax_decision(country: str, profile_type: str, is_verified_company_with_vat: bool) -> TaxDecision:
    """The staff rate for (country, profile type), else (country, any). A rate marked reverse charge
    applies only to a staff-verified company with a VAT number across an EU border from the seller
    (`BILLING_SELLER_COUNTRY`; NL→NL pays NL VAT) — 0% with a reverse-charge note; otherwise the next
    rate in line applies. With no applicable rate: a verified VAT-registered EU company across the
    border is reverse charged; any other EU customer is refused (`TaxNotConfigured`); outside the EU
    no tax. An empty seller country turns the EU rules off (only the configured rates apply)."""
    country = (country or "").strip().upper()
    seller = _seller_country()
    cross_border_eu = country in EU_COUNTRIES and country != seller
    reverse_charge_allowed = is_verified_company_with_vat and (cross_border_eu or not seller)
    reverse_charge = TaxDecision(Decimal("0"), _("Reverse charge: VAT to be accounted for by the recipient"), True)
    rates = {r.profile_type: r for r in TaxRate.objects.filter(country=country)} if country else {}
    for profile in (profile_type, TaxRate.Profile.ANY):
        rate = rates.get(profile)
        if rate is None:
            continue
        if rate.reverse_charge:
            if reverse_charge_allowed:
                return reverse_charge
            continue
        return TaxDecision(rate.percent, f"{rate.label} {rate.percent.normalize()}%")
    if seller and country in EU_COUNTRIES:
        if reverse_charge_allowed:
            return reverse_charge
        raise TaxNotConfigured(
            _("We cannot invoice customers in %(country)s yet: no VAT rate is configured for it. Please contact support.")
            % {"country": country}, code="tax_not_configured")
    return TaxDecision(Decimal("0"), "")


def _next_document_number(series: str) -> tuple[int, int]:
    """(year, sequence) from a counter row locked until commit: gap-free, unlike a sequence. The year
    is the provider's (TIME_ZONE), not the requester's: one series per provider year."""
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
    _validate_currency_code(currency)
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
            unit_price=line.unit_price, amount=quantize(line.unit_price * line.quantity, currency), reference=line.reference,
            is_discount=line.discount,
        ))
    subtotal = sum((line.amount for line in prepared), ZERO)
    if subtotal < 0:
        raise BillingError("A discount cannot exceed the invoice's other lines.")
    # Advance payments only fill the balance; tax is charged on the services the balance pays for.
    tax = TaxDecision(Decimal("0"), "") if kind == Invoice.Kind.ADVANCE or untaxed else tax_for(customer)
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


def _account_currency_locked(customer: Customer) -> str:
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


def _credit_customer_legs(customer: Customer, amount: Decimal, currency: str, table: RateTable) -> list:
    """Legs crediting `amount` `currency` to the customer's balance through FX when the account
    currency differs. The last item is the Quote used (or None)."""
    account = customer_account(customer=customer, currency=_account_currency_locked(customer))
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
    account = customer_account(customer=customer, currency=_account_currency_locked(customer))
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
    """Pay a locked open invoice in full from the balance, or change nothing (also while the payment
    gate is closed: every path that spends the balance on an invoice comes through here or bulk)."""
    due = invoice.amount_due
    if due == 0:
        _mark_paid(invoice)
        return True
    if invoice_payment_blockers(invoice):
        return False
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
    invoice_payment_gate_check(invoice)
    if _pay_locked_from_balance(invoice, actor):
        return invoice.amount_paid
    account = _lock_accounts([customer_account(customer=invoice.customer, currency=_account_currency_locked(invoice.customer))])
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
    # What was paid on an advance invoice is on the balance already (credited when paid).
    if invoice.amount_paid > 0 and invoice.kind != Invoice.Kind.ADVANCE:
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
        invoice = _lock_invoice(payment.invoice)
        invoice_was_open = invoice.is_open
    _account_currency_locked(customer)  # after the invoice (lock order); waits for a currency change
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
                    settle, quote = _settlement_legs(invoice, table)
                    legs += settle
    if to_balance:
        credit = _credit_customer_legs(customer, to_balance, payment.currency, table)
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
    _lock_accounts([leg[0] for leg in legs])
    label = hooks.payment_method_label(payment.method)
    memo = (_("Payment for invoice %(number)s (%(method)s)") % {"number": invoice.number, "method": label}
            if invoice else _("Balance top-up (%(method)s)") % {"method": label})
    ledger_post(idempotency_key=f"payment:{payment.pk}", kind=LedgerTransaction.Kind.TOPUP, legs=legs,
                invoice=invoice, payment=payment, created_by=actor, quote=quote, memo=memo)
    if invoice_was_open:
        if invoice.amount_paid + applied == invoice.total:
            _mark_paid(invoice)
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
    _notify(customer=customer, kind="payment_received", link=reverse("billing:payment_detail", args=[payment.pk]),
            dedupe_key=f"payment:{payment.pk}",
            context={"amount": format_money(payment.amount, payment.currency, lang), "method": method_label,
                     "balance": format_money(balance_now, customer.currency, lang), "invoice": invoice.number if invoice else "",
                     "credited_to_balance": already_paid})
    balance_grew = bool(to_balance)
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

def _credit_note_totals(invoice: Invoice) -> tuple[Decimal, Decimal]:
    """(amount, tax) already credited on the invoice, plus the invoice part of refunds still being sent."""
    amount = tax = ZERO
    for note in invoice.credit_notes.all():
        amount += note.amount
        tax += note.tax_amount
    pending = PaymentRefund.objects.filter(payment__invoice=invoice, status=PaymentRefund.Status.PENDING)
    amount += sum((r.invoice_part for r in pending), ZERO)
    return amount, tax


def _credit_note_tax_part(invoice: Invoice, amount: Decimal, credited: Decimal, credited_tax: Decimal) -> Decimal:
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
    invoice = _lock_invoice(invoice)
    if invoice.status != Invoice.Status.PAID:
        raise BillingError(_("Only a paid invoice can be refunded."))
    if invoice.kind == Invoice.Kind.ADVANCE:
        # Advance money is already on the balance: refunding it to the balance would double it.
        raise BillingError(_("An advance payment is already on the balance: refund it to the card or bank account it came from."),
                           code="advance_to_balance")
    if PaymentRefund.objects.filter(payment__invoice=invoice, status=PaymentRefund.Status.PENDING).exists():
        # Its credit note is not issued yet, so the tax remainder cannot be known.
        raise BillingError(_("A refund of this invoice is being sent; try again once it has completed."), code="refund_pending")
    credited, credited_tax = _credit_note_totals(invoice)
    refundable = invoice.total - credited
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable or not fits_minor_units(amount, invoice.currency):
        raise BillingError(_("The refund must be between 0 and %(max)s.") % {"max": format_money(refundable, invoice.currency)})
    cur = invoice.currency
    tax_part = _credit_note_tax_part(invoice, amount, credited, credited_tax)
    credit, quote = _credit_note_balance_legs(invoice, amount, completes=amount == refundable)
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


# --- refunds to the card or bank account a payment came from ---------------------------------------

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
    credited, _tax = _credit_note_totals(invoice)
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
    invoice = _lock_invoice(payment.invoice) if payment.invoice_id else None  # invoice rows before the payment row
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
        _lock_accounts([leg[0] for leg in legs])
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
    invoice = _lock_invoice(payment.invoice) if payment.invoice_id else None  # invoice, then refund and payment rows
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
            tax_part = _credit_note_tax_part(invoice, note_amount, credited, credited_tax) if note_amount else ZERO
            legs.append((provider_account(kind=LedgerAccount.Kind.REVENUE, currency=cur), -(note_amount - tax_part)))
            if tax_part:
                legs.append((provider_account(kind=LedgerAccount.Kind.TAX, currency=cur), -tax_part))
        completes = note_amount > 0 and note_amount == invoice.total - credited
    _lock_accounts([leg[0] for leg in legs])
    number = ""
    if note_amount > 0:  # after the accounts, as in credit_note_issue (the only other user of this counter)
        year, sequence = _next_document_number("CN")
        number = f"CN-{year}-{sequence:06d}"
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
        _lock_accounts([leg[0] for leg in legs])
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


@transaction.atomic
def balance_write_off(*, customer: Customer, reason: str, actor, idempotency_key: str) -> list[LedgerTransaction]:
    """Close every balance account of the customer to zero against `adjustment:writeoff:<CUR>` (money
    the provider keeps, or a debt it forgives), audited. Idempotent per key and currency."""
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    accounts = list(LedgerAccount.objects.filter(customer=customer, kind=LedgerAccount.Kind.CUSTOMER).order_by("pk"))
    locked = _lock_accounts(accounts)
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
    account = customer_account(customer=customer, currency=_account_currency_locked(customer))
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
def customer_settle_for_deletion(*, customer: Customer, deletion_request, method: str, reason: str, actor,
                                 bank_reference: str = "") -> list:
    """Before staff approve an account deletion: cancel the customer's open invoices (what was applied
    returns to the balance), then settle every balance through the ledger's own paths:

    - refund: staff send the balance back by bank transfer; it is recorded as refunds of the payments
      that brought it, newest first, each with the bank's reference (`payment_refund_sent_by_bank`:
      the money leaves through clearing at the payment's own rate, and the audit reconciles it).
      Money no payment brought (a credit note, a staff adjustment) is refused: write it off or
      refund it explicitly;
    - write-off: `balance_write_off` (a negative balance is always written off).

    A second submit finds nothing left to settle; money arriving later is settled by the next run."""
    if method not in (DeletionSettlement.REFUND_BANK, DeletionSettlement.WRITE_OFF):
        raise BillingError(_("Choose a refund or a write-off."), code="method")
    if not reason.strip():
        raise BillingError(_("A reason is required."), code="reason")
    if method == DeletionSettlement.REFUND_BANK and not bank_reference.strip():
        raise BillingError(_("Enter the bank's transaction reference."), code="bank_reference")
    if deletion_request.customer_id != customer.pk or deletion_request.status != deletion_request.Status.PENDING:
        raise BillingError(_("Only a pending deletion request of this customer can be settled."), code="request")
    # Lock order: owners of the invoices, the invoices, then (inside each posting) the accounts.
    open_invoices = list(Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).order_by("pk"))
    for invoice in open_invoices:
        hooks.lock_invoice_owners(invoice)
    for invoice in Invoice.objects.select_for_update().filter(pk__in=[i.pk for i in open_invoices]).order_by("pk"):
        invoice_cancel(invoice=invoice, reason="account deletion", actor=actor)
    settled: list = []
    if method == DeletionSettlement.REFUND_BANK:
        settled += _refund_balance_by_bank(customer=customer, reason=reason, actor=actor, bank_reference=bank_reference)
    last_entry = (LedgerEntry.objects.filter(account__customer=customer, account__kind=LedgerAccount.Kind.CUSTOMER)
                  .order_by("-pk").values_list("pk", flat=True).first())
    if method == DeletionSettlement.WRITE_OFF or LedgerAccount.objects.filter(
            customer=customer, kind=LedgerAccount.Kind.CUSTOMER, balance__lt=0).exists():
        settled += balance_write_off(customer=customer, reason=reason, actor=actor,
                                     idempotency_key=f"deletion-settlement:{deletion_request.pk}:{last_entry}")
    return settled


def _refund_balance_by_bank(*, customer: Customer, reason: str, actor, bank_reference: str) -> list:
    """Refund the positive balance as bank refunds of the payments that put money on it, newest first."""
    from .selectors import refundable_payments

    account = customer_account(customer=customer)
    balance = LedgerAccount.objects.get(pk=account.pk).balance
    refunds = []
    for payment, refundable in refundable_payments(customer):
        if balance <= 0:
            break
        if payment.currency != account.currency:
            continue  # another currency's payment: its share was converted; staff refund it from the payment
        invoice = payment.invoice
        if invoice is not None and invoice.kind != Invoice.Kind.ADVANCE and invoice.status != Invoice.Status.CANCELLED:
            continue  # it paid for a service: that money is not on the balance
        amount = min(balance, refundable)
        refunds.append(payment_refund_sent_by_bank(payment=payment, amount=amount, bank_reference=bank_reference,
                                                   reason=reason, actor=actor))
        balance -= amount
    if balance > 0:
        raise BillingError(_("%(amount)s of the balance did not come from a payment that can be refunded: write it off, "
                             "or refund it from the payment it came from.") % {"amount": format_money(balance, account.currency)},
                           code="not_refundable")
    return refunds


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
    """Switch the account currency: convert the balance through the FX accounts at the rate the customer
    confirmed, and with it every amount stored in the account currency (the low-balance threshold here,
    gateways' auto-payment cap through `hooks.register_currency_change_handler`), all under one lock.

    FOR NO KEY UPDATE on the customer row, which every balance posting also takes
    (`_account_currency_locked`): a payment that runs meanwhile waits, then credits the new account;
    and unlike FOR UPDATE it does not block the foreign-key checks (KEY SHARE) of rows that merely
    reference the customer.
    """
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
    if balance < 0:
        raise BillingError(_("Settle the negative balance before changing the currency."))
    table = RateTable()

    def convert(amount: Decimal, amount_currency: str) -> Decimal:
        if amount_currency == currency:
            return amount
        rate = preview.quote.rate if amount_currency == old.currency else table.quote(amount_currency, currency).rate
        return quantize(amount * rate, currency)

    # Stored amounts move first, so the posting below already sees the new currency and threshold.
    threshold = convert(customer.low_balance_threshold, customer.low_balance_threshold_currency)
    Customer.objects.filter(pk=customer.pk).update(
        currency=currency, low_balance_threshold=threshold, low_balance_threshold_currency=currency)
    customer.currency, customer.low_balance_threshold, customer.low_balance_threshold_currency = currency, threshold, currency
    # The same money in another currency is no new crossing of the threshold: the alert state moves too.
    LedgerAccount.objects.filter(pk=new.pk).update(low_balance_alerted=locked[old.pk].low_balance_alerted)
    for handler in hooks.currency_change_handlers():
        handler(customer, old.currency, currency, convert)
    tx = None
    if balance > 0:
        converted = quantize(balance * preview.quote.rate, currency)
        legs = [(old, -balance), (fx_old, balance), (fx_new, -converted), (new, converted)]
        tx = ledger_post(
            idempotency_key=f"conversion:{customer.pk}:{old.currency}:{currency}:{timezone.now().timestamp()}",
            kind=LedgerTransaction.Kind.CONVERSION, legs=legs, created_by=actor, quote=preview.quote,
            memo=_("Account currency changed from %(old)s to %(new)s") % {"old": old.currency, "new": currency},
        )
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
    if payer.country != before["country"]:
        payer.country_approved_at = None  # staff approved the old country, not this one
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


def payer_verify(*, payer: Payer, staff) -> Payer:
    """Staff verify a company. An EU VAT number is asked of VIES first (outside the transaction: no row
    lock is held during the call): `invalid` refuses, `unavailable` does not (see billing/vat.py)."""
    result = _vies_ask(payer)
    if result is not None and result.status == vat.INVALID:
        with transaction.atomic():
            _vies_store(payer.pk, result)
        raise BillingError(_("VIES says the VAT number %(number)s is not valid.") % {"number": payer.vat_number},
                           code="vies_invalid")
    with transaction.atomic():
        if result is not None:
            _vies_store(payer.pk, result)
        payer = _payer_for_staff(payer)
        payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.VERIFIED, "", timezone.now()
        payer.save(update_fields=["verification_status", "verification_note", "verified_at"])
        activity_record(action="billing.payer_verified", customer=payer.customer, actor=staff, visible_to_customer=False,
                        details={**_payer_audit_details(payer), "vies": result.status if result else ""})
        return payer


def _vies_ask(payer: Payer):
    """VIES's answer on the payer's EU VAT number; None when it has none (nothing to ask)."""
    if payer.is_profile or not vat.is_eu_vat_number(payer.vat_number):
        return None
    return vat.vies_check(payer.vat_number)


def _vies_store(payer_id: int, result) -> None:
    fields = {"vies_status": result.status, "vies_checked_at": result.checked_at}
    if result.status != vat.UNAVAILABLE:  # keep the last real consultation while VIES is down
        fields["vies_consultation_number"] = result.consultation_number
    Payer.objects.filter(pk=payer_id).update(**fields)


def payer_vies_recheck(*, payer: Payer) -> str:
    """Ask VIES again (beat `billing-vies-recheck`). A verified company VIES now calls invalid goes back to
    awaiting verification, which ends its reverse charge on new invoices. Returns the status stored."""
    result = _vies_ask(payer)
    if result is None:
        return ""
    with transaction.atomic():
        _vies_store(payer.pk, result)
        if result.status == vat.INVALID:
            locked = Payer.objects.select_for_update().get(pk=payer.pk)
            if locked.verification_status == Payer.Verification.VERIFIED:
                locked.verification_status, locked.verified_at = Payer.Verification.PENDING, None
                locked.verification_note = "VIES: VAT number not valid"
                locked.save(update_fields=["verification_status", "verified_at", "verification_note"])
                activity_record(action="billing.payer_vies_invalid", customer=locked.customer, actor=None,
                                visible_to_customer=False, details=_payer_audit_details(locked))
    return result.status


def payers_vies_recheck() -> int:
    """Company payers with an EU VAT number whose last VIES answer was `unavailable`, or never asked."""
    payers = (Payer.objects.filter(payer_type=Payer.Type.COMPANY, is_profile=False).exclude(vat_number="")
              .filter(Q(vies_status__in=["", vat.UNAVAILABLE])).exclude(verification_status=Payer.Verification.REJECTED))
    return sum(1 for payer in payers.order_by("pk") if payer_vies_recheck(payer=payer) in (vat.VALID, vat.INVALID))


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


@transaction.atomic
def payer_country_approve(*, payer: Payer, staff) -> Payer:
    """Staff saw evidence (e.g. a bank or billing address) that the payer is in its stated country,
    which differs from the profile's: from now on that country decides the payer's invoices' tax."""
    payer = Payer.objects.select_for_update().select_related("customer").get(pk=payer.pk)
    if payer.is_profile or not payer.country:
        raise BillingError(_("Only a payer with its own country is approved."), code="no_country")
    payer.country_approved_at = timezone.now()
    payer.save(update_fields=["country_approved_at"])
    activity_record(action="billing.payer_country_approved", customer=payer.customer, actor=staff, visible_to_customer=False,
                    details={**_payer_audit_details(payer), "country": payer.country})
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
    """THE payment gate: everything that stops paying this invoice — the customer's profile gate
    (missing details, company not verified) plus the chosen payer's. Checked by every path that pays:
    the invoice and payment pages, `payment_start`, the balance (`_pay_locked_from_balance`, so
    ordering, renewing, upgrading and auto-payment of open invoices), the set-based renewals
    (`bulk.invoices_issue_and_pay`) and the card auto-payment (`autopay_topup`)."""
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
    payer = Payer.objects.select_related("customer").get(pk=payer.pk)  # as stored: its tax evidence may be newer
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
