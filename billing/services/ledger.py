"""The ledger: customer and provider accounts, balanced postings under the account locks, low-balance alerts."""

from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.models import Customer
from core.topbar import topbar_changed
from notifications.kinds import Kind
from notifications.services import notify as _notify  # module-level name: tests replace it

from ..funding import funding_record, posted_legs
from ..models import Invoice, LedgerAccount, LedgerEntry, LedgerTransaction, Payment
from ..money import fits_minor_units, format_money
from ..rates import Quote
from .errors import InsufficientFunds


def customer_account(*, customer: Customer, currency: str | None = None) -> LedgerAccount:
    currency = currency or customer.currency
    account, _created = LedgerAccount.objects.get_or_create(
        code=f"customer:{customer.pk}:{currency}",
        defaults={"kind": LedgerAccount.Kind.CUSTOMER, "customer": customer, "currency": currency},
    )
    return account


def provider_account_code(*, kind: str, currency: str, tag: str = "") -> str:
    return ":".join(part for part in (kind, tag, currency) if part)


def provider_account(*, kind: str, currency: str, tag: str = "") -> LedgerAccount:
    code = provider_account_code(kind=kind, currency=currency, tag=tag)
    account, _created = LedgerAccount.objects.get_or_create(code=code, defaults={"kind": kind, "currency": currency})
    return account


BATCH_SLOTS = 16


def batch_provider_accounts_lock(*, kinds: tuple[str, ...], currencies: set[str]) -> dict[tuple[str, str], LedgerAccount]:
    """Provider accounts of one batch-job slot, locked: {(kind, currency): account}.

    Batch jobs (the set-based renewal) post to per-slot sub-accounts (`holding:batch3:EUR`, …)
    instead of the shared `holding:EUR`, so two workers never wait for each other on hot provider
    rows and web payments never wait for a worker. A slot is taken with a transaction-level advisory
    try-lock (never waits, so it adds no deadlock: slot 1, else 2, …; all busy: wait for slot 1), and
    then its accounts are locked in pk order, after the customer accounts as billing's lock order
    wants. Every sub-account keeps its own cached balance and running `balance_after`, which
    `audit_ledger` checks like any account's; reports read provider accounts by kind.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM generate_series(1, %s) AS n WHERE pg_try_advisory_xact_lock(%s, n) LIMIT 1",
                       [BATCH_SLOTS, _BATCH_SLOT_LOCK])
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 1)", [_BATCH_SLOT_LOCK])
        slot = row[0] if row else 1
    wanted = {(kind, currency): provider_account_code(kind=kind, currency=currency, tag=f"batch{slot}")
              for currency in sorted(currencies) for kind in kinds}

    def lock():
        return {a.code: a for a in LedgerAccount.objects.select_for_update().filter(code__in=wanted.values()).order_by("pk")}

    locked = lock()
    if len(locked) < len(wanted):
        for (kind, currency), code in wanted.items():
            if code not in locked:
                LedgerAccount.objects.get_or_create(code=code, defaults={"kind": kind, "currency": currency})
        locked = lock()
    return {key: locked[code] for key, code in wanted.items()}


_BATCH_SLOT_LOCK = 0x62617463  # advisory lock class of the batch slots ("batc")


def fx_accounts(*currencies: str) -> dict[str, LedgerAccount]:
    """The FX accounts of these currencies, created (on first use) in code order: two transactions
    creating the same pair in opposite orders would deadlock on the unique code."""
    return {currency: provider_account(kind=LedgerAccount.Kind.FX, currency=currency) for currency in sorted(set(currencies))}


def ledger_accounts_lock(accounts) -> dict[int, LedgerAccount]:
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
        locked = ledger_accounts_lock([account for account, _amount in legs])
        _legs_check(legs, locked, idempotency_key)
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
        _balances_write(locked.values(), alert_low_balance=alert_low_balance)
        LedgerEntry.objects.bulk_create(entries)
        funding_record(posted_legs(tx, entries, accounts=locked, invoice=invoice, payment=payment))
        topbar_changed(account.customer_id for account in locked.values() if account.kind == LedgerAccount.Kind.CUSTOMER)
        return tx


def _legs_check(legs: list[tuple[LedgerAccount, Decimal]], locked: dict[int, LedgerAccount], idempotency_key: str) -> None:
    """Every amount in its account currency's minor units; the legs balance per currency."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for account, amount in legs:
        currency = locked[account.pk].currency
        if not fits_minor_units(amount, currency):
            raise ValueError(f"{amount} is not rounded to {currency} minor units")
        totals[currency] += amount
    unbalanced = {cur: total for cur, total in totals.items() if total != 0}
    if unbalanced or not legs:
        raise ValueError(f"Unbalanced or empty ledger transaction {idempotency_key}: {unbalanced}")


def _balances_write(accounts, *, alert_low_balance: bool) -> None:
    """The locked accounts' new cached balances; a customer's may not go below its credit limit, and
    crossing the low-balance threshold alerts once."""
    for account in accounts:
        if account.kind == LedgerAccount.Kind.CUSTOMER:
            if account.balance < -account.credit_limit:
                raise InsufficientFunds(_("The balance is not enough for this operation."), code="insufficient_funds")
            if alert_low_balance:
                low_balance_alert_update(account)
        LedgerAccount.objects.filter(pk=account.pk).update(
            balance=account.balance, low_balance_alerted=account.low_balance_alerted,
            low_balance_crossings=account.low_balance_crossings,
        )


def low_balance_alert_update(account: LedgerAccount) -> None:
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
            customer=customer, kind=Kind.LOW_BALANCE,
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
            account = ledger_accounts_lock([LedgerAccount(pk=pk)])[pk]
            before = account.low_balance_crossings
            low_balance_alert_update(account)
            LedgerAccount.objects.filter(pk=pk).update(
                low_balance_alerted=account.low_balance_alerted, low_balance_crossings=account.low_balance_crossings
            )
            sent += account.low_balance_crossings - before
    return sent
