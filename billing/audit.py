"""Ledger audit: the checks behind `manage.py audit_ledger`, each returning human-readable failures."""
from django.db import connection

from .models import Invoice, LedgerAccount


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


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
          LEFT JOIN billing_ledgerentry e ON e.transaction_id = t.id
               AND e.account_id IN (SELECT id FROM billing_ledgeraccount WHERE kind = 'holding')
         GROUP BY i.id ORDER BY i.id""")
    failures = []
    for _pk, number, status, total, paid, held, settled in rows:
        if status in (Invoice.Status.PAID, Invoice.Status.REFUNDED):
            if paid != total or (total > 0 and (settled != total or held != 0)):
                failures.append(f"invoice {number} is {status} but the ledger settled {settled} of {total}")
        elif status in Invoice.OPEN_STATUSES:
            if held != paid:
                failures.append(f"invoice {number}: {paid} marked paid but {held} held in the ledger")
        elif held != 0:
            failures.append(f"invoice {number} is {status} but still holds {held}")
    return failures


def audit() -> dict[str, list[str]]:
    return {
        "transactions": unbalanced_transactions(),
        "accounts": account_mismatches(),
        "invoices": uncovered_invoices(),
    }
