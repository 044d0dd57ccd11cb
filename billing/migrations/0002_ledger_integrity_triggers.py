"""Ledger integrity in PostgreSQL itself (the django-hordak approach).

1. A DEFERRABLE INITIALLY DEFERRED constraint trigger checks at COMMIT that each ledger transaction's
   legs sum to zero per currency and that each leg's currency is its account's currency.
2. Row triggers refuse UPDATE and DELETE on legs and transactions: corrections are new transactions.
   (TRUNCATE, used only by test database flushes, is not a row operation.)
"""
from django.db import migrations

FORWARD = """
CREATE FUNCTION billing_ledger_check_balanced() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.currency, SUM(e.amount) AS total INTO bad
      FROM billing_ledgerentry e WHERE e.transaction_id = NEW.transaction_id
     GROUP BY e.currency HAVING SUM(e.amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: % %', NEW.transaction_id, bad.total, bad.currency
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM billing_ledgeraccount a WHERE a.id = NEW.account_id AND a.currency <> NEW.currency) THEN
        RAISE EXCEPTION 'ledger entry % currency % differs from its account', NEW.id, NEW.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER billing_ledgerentry_balanced
    AFTER INSERT ON billing_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_check_balanced();

CREATE FUNCTION billing_ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_ledgerentry_append_only BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_refuse_change();
CREATE TRIGGER billing_ledgertransaction_append_only BEFORE UPDATE OR DELETE ON billing_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_ledgertransaction_append_only ON billing_ledgertransaction;
DROP TRIGGER IF EXISTS billing_ledgerentry_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_refuse_change();
DROP TRIGGER IF EXISTS billing_ledgerentry_balanced ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_check_balanced();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_ledger_invoices_payments_rates")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
