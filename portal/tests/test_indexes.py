"""Indexes on the tables a renewal writes are pinned: each one costs every renewal an index insert (an order's
update is not HOT: expires_at is indexed). billing 0015, orders 0011 and notifications 0009 dropped 15 redundant
ones; a later AlterField of an indexed CharField would silently bring back its varchar_pattern_ops twin."""
import pytest
from django.db import connection

RENEWAL_TABLES = {
    "billing_invoice": 11, "billing_invoiceline": 2, "billing_ledgertransaction": 6, "billing_ledgerentry": 3,
    "billing_balancefunding": 9, "orders_order": 9, "orders_orderrenewal": 4, "orders_orderevent": 3,
    "notifications_notification": 5, "notifications_emailoutbox": 6,
}


@pytest.mark.django_db
def test_the_tables_a_renewal_writes_keep_their_pinned_number_of_indexes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE tablename = ANY(%s)", [list(RENEWAL_TABLES)])
        found: dict[str, list[str]] = {}
        for table, index in cursor.fetchall():
            found.setdefault(table, []).append(index)
    counts = {table: len(found.get(table, [])) for table in RENEWAL_TABLES}
    assert counts == RENEWAL_TABLES, {table: sorted(found[table]) for table in RENEWAL_TABLES if counts[table] != RENEWAL_TABLES[table]}
    assert not [index for indexes in found.values() for index in indexes
                if index.endswith("_like") and "reference" not in index]  # reference: order_invoices runs startswith
