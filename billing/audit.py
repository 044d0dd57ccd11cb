"""Ledger audit: the checks behind `manage.py audit_ledger`, each returning human-readable failures.

Apps below billing's public API (gateways) add their own reconciliations with `register_check`.
"""
from collections.abc import Callable

from django.db import connection, transaction

from .funding import funding_mismatches
from .models import Invoice, LedgerAccount

_extra_checks: dict[str, Callable[[], list[str]]] = {}


def register_check(name: str, check: Callable[[], list[str]]) -> None:
    _extra_checks[name] = check


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _account_ids(kind: str) -> list[int]:
    """The ids of the accounts of `kind`, for a query to name as constants. A provider account is hot (a leg
    per payment, against a few per customer account): named by constants PostgreSQL estimates its legs from
    the column's statistics, while `account_id IN (SELECT id ... WHERE kind = ...)` is estimated at the
    average legs per account, and on a large ledger that planned a loop over every holding leg once per
    invoice (quadratic: 39 s for 22,000 renewals)."""
    return list(LedgerAccount.objects.filter(kind=kind).values_list("id", flat=True))


def unbalanced_transactions() -> list[str]:
    rows = _rows("""
        SELECT t.id, t.idempotency_key, e.currency, SUM(e.amount) FROM billing_ledgertransaction t
          JOIN billing_ledgerentry e ON e.transaction_id = t.id
         GROUP BY t.id, t.idempotency_key, e.currency HAVING SUM(e.amount) <> 0 ORDER BY t.id""")
    return [f"transaction #{tid} ({key}) does not balance: {total} {cur}" for tid, key, cur, total in rows]


def account_mismatches() -> list[str]:
    rows = _rows("""
        SELECT a.id, a.code, a.balance, COALESCE(SUM(e.amount), 0),
               (SELECT e2.balance_after FROM billing_ledgerentry e2 WHERE e2.account_id = a.id ORDER BY e2.id DESC LIMIT 1)
          FROM billing_ledgeraccount a LEFT JOIN billing_ledgerentry e ON e.account_id = a.id
         GROUP BY a.id ORDER BY a.id""")
    failures = []
    for pk, code, cached, summed, last_after in rows:
        if cached != summed:
            failures.append(f"account {code}: cached balance {cached} but legs sum to {summed}")
        if last_after is not None and last_after != cached:
            failures.append(f"account {code}: last balance_after {last_after} differs from balance {cached}")
    running = _rows("""
        SELECT account_id, id FROM (
            SELECT account_id, id, balance_after,
                   SUM(amount) OVER (PARTITION BY account_id ORDER BY id) AS running
              FROM billing_ledgerentry) x
         WHERE balance_after <> running ORDER BY id LIMIT 20""")
    failures += [f"ledger entry #{entry} on account #{acc}: balance_after is not the running sum" for acc, entry in running]
    negatives = LedgerAccount.objects.filter(kind=LedgerAccount.Kind.CUSTOMER).values_list("code", "balance", "credit_limit")
    failures += [f"account {code}: balance {bal} below credit limit -{limit}" for code, bal, limit in negatives if bal < -limit]
    return failures


def uncovered_invoices() -> list[str]:
    """A paid invoice must have been settled out of holding for its total; an open one must hold
    exactly what was applied to it; a cancelled one must hold nothing."""
    rows = _rows("""
        SELECT i.id, i.number, i.status, i.total, i.amount_paid,
               COALESCE(SUM(e.amount), 0) AS held,
               COALESCE(SUM(CASE WHEN e.amount < 0 AND t.kind <> 'reversal' THEN -e.amount ELSE 0 END), 0) AS settled
          FROM billing_invoice i
          LEFT JOIN billing_ledgertransaction t ON t.invoice_id = i.id
          LEFT JOIN billing_ledgerentry e ON e.transaction_id = t.id AND e.account_id = ANY(%s)
         GROUP BY i.id ORDER BY i.id""", [_account_ids(LedgerAccount.Kind.HOLDING)])
    advance = set(Invoice.objects.filter(kind=Invoice.Kind.ADVANCE).values_list("number", flat=True))
    failures = []
    for _pk, number, status, total, paid, held, settled in rows:
        if number in advance:
            # Payments on a top-up go straight to the balance; nothing waits in holding.
            if held != 0:
                failures.append(f"advance invoice {number} holds {held} instead of crediting the balance")
        elif status in (Invoice.Status.PAID, Invoice.Status.REFUNDED):
            if paid != total or (total > 0 and (settled != total or held != 0)):
                failures.append(f"invoice {number} is {status} but the ledger settled {settled} of {total}")
        elif status in Invoice.OPEN_STATUSES:
            if held != paid:
                failures.append(f"invoice {number}: {paid} marked paid but {held} held in the ledger")
        elif held != 0:
            failures.append(f"invoice {number} is {status} but still holds {held}")
    return failures


def clearing_mismatches() -> list[str]:
    """Money in and out of the gateways' clearing accounts is exactly the payments received minus the
    refunds sent: per payment, and nothing moves clearing without a payment. Refunds being sent sit in
    the `refunding` account until completed or failed."""
    failures = [f"payment #{pk} ({key}): clearing moved {moved} but {amount} received and {refunded} refunded"
                for pk, key, amount, refunded, moved in _rows("""
        SELECT p.id, p.idempotency_key, p.amount, p.refunded_amount, COALESCE(SUM(e.amount), 0) AS moved
          FROM billing_payment p
          LEFT JOIN billing_ledgertransaction t ON t.payment_id = p.id
          LEFT JOIN billing_ledgerentry e ON e.transaction_id = t.id AND e.account_id = ANY(%s)
         GROUP BY p.id HAVING COALESCE(SUM(e.amount), 0) <> p.refunded_amount - p.amount ORDER BY p.id""",
                                                        [_account_ids(LedgerAccount.Kind.CLEARING)])]
    failures += [f"transaction #{tid} ({key}) moves clearing account {code} without a payment"
                 for tid, key, code in _rows("""
        SELECT t.id, t.idempotency_key, a.code FROM billing_ledgertransaction t
          JOIN billing_ledgerentry e ON e.transaction_id = t.id
          JOIN billing_ledgeraccount a ON a.id = e.account_id AND a.kind = 'clearing'
         WHERE t.payment_id IS NULL ORDER BY t.id""")]
    failures += [f"payment #{pk}: refunded_amount {refunded} but completed refunds sum to {done}"
                 for pk, refunded, done in _rows("""
        SELECT p.id, p.refunded_amount, COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'succeeded'), 0)
          FROM billing_payment p LEFT JOIN billing_paymentrefund r ON r.payment_id = p.id
         GROUP BY p.id HAVING p.refunded_amount <> COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'succeeded'), 0)""")]
    failures += [f"account {code}: holds {balance} but refunds being sent in {cur} total {pending}"
                 for code, cur, balance, pending in _rows("""
        SELECT a.code, a.currency, a.balance, COALESCE((SELECT SUM(r.balance_part) FROM billing_paymentrefund r
                 WHERE r.status = 'pending' AND r.currency = a.currency), 0) AS pending
          FROM billing_ledgeraccount a WHERE a.kind = 'refunding'""") if balance != pending]
    return failures


def foreign_currency_balances() -> list[str]:
    """A customer's money lives in the account of their current currency; anything left in another
    account is invisible to them (stranded) and is flagged."""
    return [f"account {code}: {balance} {cur} left outside customer {customer_id}'s account currency {current}"
            for code, cur, balance, customer_id, current in _rows("""
        SELECT a.code, a.currency, a.balance, c.id, c.currency FROM billing_ledgeraccount a
          JOIN accounts_customer c ON c.id = a.customer_id
         WHERE a.kind = 'customer' AND a.currency <> c.currency AND a.balance <> 0 ORDER BY a.id""")]


def invoice_recognition_mismatches() -> list[str]:
    """Revenue and tax recognised for each invoice equal its subtotal and tax once paid, less its credit
    notes; nothing is recognised for open, cancelled or advance invoices. An advance invoice's amount
    paid is what its payments brought."""
    rows = _rows("""
        SELECT i.number, i.kind, i.status, i.subtotal, i.tax_amount, i.total, i.amount_paid,
               COALESCE((SELECT SUM(e.amount) FROM billing_ledgerentry e JOIN billing_ledgertransaction t ON t.id = e.transaction_id
                          JOIN billing_ledgeraccount a ON a.id = e.account_id AND a.kind = 'revenue' WHERE t.invoice_id = i.id), 0),
               COALESCE((SELECT SUM(e.amount) FROM billing_ledgerentry e JOIN billing_ledgertransaction t ON t.id = e.transaction_id
                          JOIN billing_ledgeraccount a ON a.id = e.account_id AND a.kind = 'tax' WHERE t.invoice_id = i.id), 0),
               COALESCE((SELECT SUM(n.amount) FROM billing_creditnote n WHERE n.invoice_id = i.id), 0),
               COALESCE((SELECT SUM(n.tax_amount) FROM billing_creditnote n WHERE n.invoice_id = i.id), 0),
               COALESCE((SELECT SUM(p.amount) FROM billing_payment p WHERE p.invoice_id = i.id), 0)
          FROM billing_invoice i ORDER BY i.id""")
    failures = []
    for number, kind, status, subtotal, tax, total, paid, revenue, tax_booked, noted, noted_tax, payments in rows:
        recognised = kind != Invoice.Kind.ADVANCE and status in (Invoice.Status.PAID, Invoice.Status.REFUNDED)
        want_revenue = subtotal - (noted - noted_tax) if recognised else 0
        want_tax = tax - noted_tax if recognised else 0
        if revenue != want_revenue or tax_booked != want_tax:
            failures.append(f"invoice {number} ({status}): revenue {revenue} and tax {tax_booked} recognised, "
                            f"expected {want_revenue} and {want_tax}")
        if kind == Invoice.Kind.ADVANCE and paid != min(total, payments):
            failures.append(f"advance invoice {number}: {paid} marked paid but its payments brought {payments}")
    return failures


def credit_note_mismatches() -> list[str]:
    """Credit notes never exceed their invoice (amount and tax), a fully credited invoice is refunded,
    and each credit note's ledger transaction reverses exactly its revenue and tax."""
    failures = []
    for number, kind, status, total, tax, noted, noted_tax in _rows("""
        SELECT i.number, i.kind, i.status, i.total, i.tax_amount, SUM(n.amount), SUM(n.tax_amount)
          FROM billing_invoice i JOIN billing_creditnote n ON n.invoice_id = i.id GROUP BY i.id ORDER BY i.id"""):
        if noted > total or noted_tax > tax:
            failures.append(f"invoice {number}: credit notes {noted} (tax {noted_tax}) exceed the invoice {total} (tax {tax})")
        if (noted == total) != (status == Invoice.Status.REFUNDED):
            failures.append(f"invoice {number} is {status} with {noted} of {total} credited")
    for number, kind, amount, tax, currency, inv_currency, same_invoice, revenue, tax_booked in _rows("""
        SELECT n.number, i.kind, n.amount, n.tax_amount, n.currency, i.currency, t.invoice_id = n.invoice_id,
               COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'revenue'), 0), COALESCE(SUM(e.amount) FILTER (WHERE a.kind = 'tax'), 0)
          FROM billing_creditnote n JOIN billing_invoice i ON i.id = n.invoice_id
          JOIN billing_ledgertransaction t ON t.id = n.ledger_transaction_id
          LEFT JOIN billing_ledgerentry e ON e.transaction_id = t.id LEFT JOIN billing_ledgeraccount a ON a.id = e.account_id
         GROUP BY n.id, i.id, t.id ORDER BY n.id"""):
        want_revenue, want_tax = (0, 0) if kind == Invoice.Kind.ADVANCE else (-(amount - tax), -tax)
        if currency != inv_currency or not same_invoice or revenue != want_revenue or tax_booked != want_tax:
            failures.append(f"credit note {number}: reverses revenue {revenue} and tax {tax_booked} ({currency}), "
                            f"expected {want_revenue} and {want_tax} ({inv_currency}) on its invoice")
    return failures


def audit() -> dict[str, list[str]]:
    """Every check, each a list of failures. Called outside a transaction they all read one snapshot
    (REPEATABLE READ, read only): a check reads in several statements (the provider accounts' ids, then their
    legs), and a payment committed in between, on an account it is the first to use, would be half seen and
    reported as a fault. Inside a caller's transaction they read what it sees."""
    if connection.in_atomic_block:
        return _checks_run()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _checks_run()


def _checks_run() -> dict[str, list[str]]:
    results = {
        "transactions": unbalanced_transactions(),
        "accounts": account_mismatches(),
        "invoices": uncovered_invoices(),
        "clearing": clearing_mismatches(),
        "currencies": foreign_currency_balances(),
        "recognition": invoice_recognition_mismatches(),
        "credit_notes": credit_note_mismatches(),
        "funding": funding_mismatches(),
    }
    for name, check in _extra_checks.items():
        results[name] = check()
    return results
