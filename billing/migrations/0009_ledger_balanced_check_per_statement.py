"""The balanced-legs check once per INSERT statement over its transition table, instead of once per leg.

The row-level constraint trigger of 0002 ran, at COMMIT, one aggregate over the transaction's legs
and one account lookup for every leg: a renewal chunk of 200 invoices paid 1,000 times over
(docs/PERFORMANCE.md "Renewals"). The statement-level trigger sees every leg of the statement in
`new_legs`, and checks the same invariants set-based:

- each ledger transaction touched by the statement sums to zero per currency, over all its legs
  (earlier statements' too, so legs appended to an old transaction cannot unbalance it);
- each new leg's currency is its account's currency.

PostgreSQL allows transition tables only on plain (non-constraint) triggers, so the check runs at the
end of the INSERT rather than at COMMIT: a transaction's legs go in with one statement
(`ledger_post`'s `bulk_create`, `billing.bulk`'s one INSERT per chunk), which both posting paths do.
The non-negative customer balance stays the CHECK constraint on the cached balance, and
`balance_after` is written by the posting code and checked by `audit_ledger`.
"""
from django.db import migrations

FORWARD = """
DROP TRIGGER IF EXISTS billing_ledgerentry_balanced ON billing_ledgerentry;

CREATE FUNCTION billing_ledger_check_balanced_legs() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.transaction_id, e.currency, SUM(e.amount) AS total INTO bad
      FROM billing_ledgerentry e
     WHERE e.transaction_id IN (SELECT DISTINCT n.transaction_id FROM new_legs n)
     GROUP BY e.transaction_id, e.currency HAVING SUM(e.amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: % %', bad.transaction_id, bad.total, bad.currency
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT n.id, n.currency INTO bad
      FROM new_legs n JOIN billing_ledgeraccount a ON a.id = n.account_id
     WHERE a.currency <> n.currency LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry % currency % differs from its account', bad.id, bad.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_ledgerentry_balanced_legs
    AFTER INSERT ON billing_ledgerentry
    REFERENCING NEW TABLE AS new_legs
    FOR EACH STATEMENT EXECUTE FUNCTION billing_ledger_check_balanced_legs();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_ledgerentry_balanced_legs ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_check_balanced_legs();
CREATE CONSTRAINT TRIGGER billing_ledgerentry_balanced
    AFTER INSERT ON billing_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_check_balanced();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_payer_vies_check")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
