"""Expense funding: which money paid for what, stored when the money is spent.

The rule (one home: `replay`):
- A customer's balance account is a FIFO queue of its credits (top-ups, refunds, reversals,
  adjustments, conversions in), oldest first. Each debit of the account (a charge, or a conversion
  out, a write-off, a refund sent back) consumes the oldest credits that are left; what the queue
  cannot cover (a balance within its credit limit) is funded "by credit" (no source) and is not
  repaid from later credits.
- A service invoice paid directly by a payment (its money went to holding, not through the balance)
  is funded by that payment.
- Debits of CHARGE transactions and direct payments are expenses (the Expenses page); other debits only
  consume the queue.

`funding_record` runs inside `ledger_post` and the set-based `billing.bulk` path, under the account
locks they already hold, and stores one `BalanceFunding` row per (debit, credit consumed). The queue is
never rebuilt from history there: its head is the newest credit any stored row consumed (with what
is left of it), so each posting reads two short index ranges whatever the account's age. The same
`replay` rebuilds all rows from the ledger for the backfill migration and the bench seed
(`funding_backfill`) and for `audit_ledger`'s check (`funding_mismatches`).
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, groupby

from django.db import connection

from core.sql import insert_rows

CHARGE = "charge"
TOPUP = "topup"
ADVANCE = "advance"
CUSTOMER = "customer"
HOLDING = "holding"


@dataclass(frozen=True)
class Leg:
    """A posted ledger leg with what the rule needs from its transaction and account."""

    entry_id: int
    transaction_id: int
    kind: str  # the transaction's kind
    payment_id: int | None  # the transaction's payment
    invoice_kind: str | None  # the transaction's invoice's kind
    account_id: int
    account_kind: str
    customer_id: int | None  # the account's customer (customer accounts); the payment's customer (direct)
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Part:
    """One stored row: `amount` of `debit` (None: paid directly) funded by `source` (a credit leg; None:
    by credit, or paid directly)."""

    customer_id: int
    transaction_id: int
    debit: Leg | None
    source: Leg | None
    payment_id: int | None
    amount: Decimal
    currency: str
    expense: bool

    def row(self) -> tuple:
        """What is stored, comparable with `BalanceFunding` rows."""
        return (self.transaction_id, self.debit.entry_id if self.debit else None, self.source.entry_id if self.source else None,
                self.payment_id, self.source.kind if self.source else "", self.amount, self.currency, self.expense)


def replay(legs: Iterable[Leg], *, queue: dict[int, deque] | None = None) -> Iterator[Part]:
    """The rule over legs in posting (entry id) order. `queue`: each account's credits left, as
    [remaining, credit leg] pairs, oldest first (empty for a replay from the start)."""
    queue = {} if queue is None else queue
    for leg in legs:
        if leg.account_kind == CUSTOMER:
            fifo = queue.setdefault(leg.account_id, deque())
            if leg.amount > 0:
                fifo.append([leg.amount, leg])
                continue
            yield from _consume(leg, fifo)
        elif leg.account_kind == HOLDING and leg.amount > 0 and _paid_directly(leg):
            yield Part(customer_id=leg.customer_id, transaction_id=leg.transaction_id, debit=None, source=None,
                       payment_id=leg.payment_id, amount=leg.amount, currency=leg.currency, expense=True)


def _paid_directly(leg: Leg) -> bool:
    """A payment's money put on a service invoice (the holding leg of the payment's own transaction)."""
    return leg.kind == TOPUP and leg.payment_id is not None and leg.invoice_kind not in (None, ADVANCE)


def _consume(debit: Leg, fifo: deque) -> Iterator[Part]:
    wanted = -debit.amount
    expense = debit.kind == CHARGE
    while wanted > 0 and fifo and fifo[0][1].entry_id < debit.entry_id:
        head = fifo[0]
        part = min(head[0], wanted)
        yield Part(customer_id=debit.customer_id, transaction_id=debit.transaction_id, debit=debit, source=head[1],
                   payment_id=head[1].payment_id, amount=part, currency=debit.currency, expense=expense)
        head[0] -= part
        wanted -= part
        if head[0] == 0:
            fifo.popleft()
    if wanted > 0:
        yield Part(customer_id=debit.customer_id, transaction_id=debit.transaction_id, debit=debit, source=None,
                   payment_id=None, amount=wanted, currency=debit.currency, expense=expense)


# --- reading legs ------------------------------------------------------------------------------

_LEGS_SQL = """
    SELECT e.id, e.transaction_id, t.kind, t.payment_id, i.kind, e.account_id, a.kind,
           COALESCE(a.customer_id, p.customer_id), e.amount, e.currency
      FROM billing_ledgerentry e
      JOIN billing_ledgertransaction t ON t.id = e.transaction_id
      JOIN billing_ledgeraccount a ON a.id = e.account_id
      LEFT JOIN billing_invoice i ON i.id = t.invoice_id
      LEFT JOIN billing_payment p ON p.id = t.payment_id
"""
CUSTOMER_LEGS = "a.kind = 'customer'"
DIRECT_LEGS = "a.kind = 'holding' AND e.amount > 0 AND t.kind = 'topup' AND t.payment_id IS NOT NULL"


def _legs(where: str, params=(), order: str = "e.id") -> Iterator[Leg]:
    """Legs streamed from a server-side cursor (a whole ledger never sits in memory)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(f"{_LEGS_SQL} WHERE {where} ORDER BY {order}", params)
        while rows := cursor.fetchmany(5000):
            for row in rows:
                yield Leg(*row)


def _history() -> Iterator[Leg]:
    """Every leg the rule reads: customer-account legs per account in posting order, then the
    positive holding legs of payments."""
    yield from _legs(CUSTOMER_LEGS, order="e.account_id, e.id")
    yield from _legs(DIRECT_LEGS, order="e.transaction_id, e.id")


# --- storing -----------------------------------------------------------------------------------

def funding_record(legs: list[Leg]) -> int:
    """Store the funding of legs just posted (all legs of one or many transactions, any accounts), under
    the locks of the accounts they touch. Three statements when a customer account was debited (the
    queue heads, the credits from them on, the insert), one when an invoice was only paid directly,
    none otherwise. Returns the number of rows stored."""
    legs = sorted(legs, key=lambda leg: leg.entry_id)
    debited = sorted({leg.account_id for leg in legs if leg.account_kind == CUSTOMER and leg.amount < 0})
    # This posting's legs have the highest ids of their (locked) accounts: the stored queue ends before them.
    queue = _queues(debited, before=legs[0].entry_id) if debited else {}
    return _insert(list(replay(legs, queue=queue)))


def _queues(account_ids: list[int], *, before: int) -> dict[int, deque]:
    """Each account's credits not yet consumed, oldest first, before entry `before`: from the newest
    credit a stored row consumed (less what was taken of it) on."""
    heads: dict[int, tuple[int, Decimal]] = {}
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT a.id, h.source_id, (SELECT SUM(f.amount) FROM billing_balancefunding f WHERE f.source_id = h.source_id)
              FROM unnest(%s::bigint[]) AS a(id)
              CROSS JOIN LATERAL (SELECT f.source_id FROM billing_balancefunding f
                                   WHERE f.account_id = a.id AND f.source_id IS NOT NULL
                                   ORDER BY f.source_id DESC LIMIT 1) h""", [account_ids])
        heads = {account_id: (source_id, used) for account_id, source_id, used in cursor.fetchall()}
    where = " OR ".join(["(e.account_id = %s AND e.id >= %s)"] * len(account_ids))
    params = [value for account_id in account_ids for value in (account_id, heads.get(account_id, (0, 0))[0])]
    queue: dict[int, deque] = {account_id: deque() for account_id in account_ids}
    with connection.cursor() as cursor:  # a few rows: what the balance holds
        cursor.execute(f"{_LEGS_SQL} WHERE e.amount > 0 AND e.id < %s AND ({where}) ORDER BY e.id", [before, *params])
        for leg in (Leg(*row) for row in cursor.fetchall()):
            head = heads.get(leg.account_id)
            left = leg.amount - head[1] if head and head[0] == leg.entry_id else leg.amount
            if left > 0:
                queue[leg.account_id].append([left, leg])
    return queue


def _insert(parts: list[Part], model=None) -> int:
    """One INSERT for all `parts` (core.sql: no model instance per row; a renewal chunk stores thousands)."""
    if model is None:
        from .models import BalanceFunding as model

    insert_rows(model, [
        {"customer_id": p.customer_id, "transaction_id": p.transaction_id,
         "debit_id": p.debit.entry_id if p.debit else None, "account_id": p.debit.account_id if p.debit else None,
         "source_id": p.source.entry_id if p.source else None, "source_kind": p.source.kind if p.source else "",
         "payment_id": p.payment_id, "amount": p.amount, "currency": p.currency, "expense": p.expense}
        for p in parts], returning=None)
    return len(parts)


def posted_legs(tx, entries, *, accounts: dict, invoice=None, payment=None) -> list[Leg]:
    """`ledger_post`'s legs as `funding_record` takes them (no query: everything is in hand)."""
    return [Leg(entry_id=entry.pk, transaction_id=tx.pk, kind=str(tx.kind), payment_id=payment.pk if payment else None,
                invoice_kind=invoice.kind if invoice else None, account_id=entry.account_id,
                account_kind=accounts[entry.account_id].kind,
                customer_id=accounts[entry.account_id].customer_id or (payment.customer_id if payment else None),
                amount=entry.amount, currency=entry.currency)
            for entry in entries]


def funding_backfill(model=None) -> int:
    """Rebuild all stored funding from the ledger (the migration that introduced it passes its
    historical model; the bench seed). Returns the number of rows stored."""
    if model is None:
        from .models import BalanceFunding as model

    model.objects.all().delete()
    stored, batch = 0, []
    for part in replay(_history()):
        batch.append(part)
        if len(batch) >= 5000:
            stored, batch = stored + _insert(batch, model), []
    return stored + _insert(batch, model)


# --- audit -------------------------------------------------------------------------------------

ROW_FIELDS = ("transaction_id", "debit_id", "source_id", "payment_id", "source_kind", "amount", "currency", "expense")


def funding_mismatches(limit: int = 20) -> list[str]:
    """`audit_ledger`: the stored funding equals the rule replayed over the whole ledger. Compared per
    balance account (then the direct payments per transaction), both sides streamed in the same order,
    so memory holds one account's rows."""
    from .models import BalanceFunding

    expected = ((part.debit.account_id if part.debit else None, part.row()) for part in replay(_history()))
    stored_rows = BalanceFunding.objects.values_list("account_id", *ROW_FIELDS)
    stored = ((row[0], row[1:]) for row in chain(
        stored_rows.filter(account__isnull=False).order_by("account_id", "pk").iterator(chunk_size=5000),
        stored_rows.filter(account__isnull=True).order_by("transaction_id", "pk").iterator(chunk_size=5000)))
    failures = []
    for _group, want, have in _merge_groups(expected, stored):
        if Counter(want) == Counter(have):
            continue
        by_transaction: dict[int, tuple[Counter, Counter]] = {}
        for side, rows in ((0, want), (1, have)):
            for row in rows:
                by_transaction.setdefault(row[0], (Counter(), Counter()))[side][row] += 1
        for transaction_id, (mine, theirs) in sorted(by_transaction.items()):
            if mine != theirs:
                failures.append(f"transaction #{transaction_id}: stored funding {_describe(theirs)} but the FIFO gives {_describe(mine)}")
                if len(failures) >= limit:
                    return failures
    return failures


def _merge_groups(expected: Iterator[tuple], stored: Iterator[tuple]) -> Iterator[tuple[int | None, list, list]]:
    """Pairs the rows of two streams of (group, row), each ordered by group (balance accounts ascending,
    then None: the direct payments): (group, expected rows, stored rows)."""
    def rank(key):
        return (1, 0) if key is None else (0, key)

    left, right = groupby(expected, key=lambda item: item[0]), groupby(stored, key=lambda item: item[0])
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and rank(a[0]) < rank(b[0])):
            yield a[0], [row for _key, row in a[1]], []
            a = next(left, None)
        elif a is None or rank(b[0]) < rank(a[0]):
            yield b[0], [], [row for _key, row in b[1]]
            b = next(right, None)
        else:
            yield a[0], [row for _key, row in a[1]], [row for _key, row in b[1]]
            a, b = next(left, None), next(right, None)


def _describe(rows: Counter) -> str:
    if not rows:
        return "nothing"
    return "; ".join(f"{amount} {currency} of " + (f"debit #{debit}" if debit else "the invoice") + " from "
                     + (f"credit #{source}" if source else f"payment #{payment}" if payment else "the credit limit")
                     for _tx, debit, source, payment, _kind, amount, currency, _expense in sorted(rows.elements(), key=str))
