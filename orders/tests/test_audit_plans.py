"""audit_ledger reads the ledger once: its work grows with the ledger, not with the ledger squared.

A provider account (holding, clearing) is hot: a leg per payment, against a few legs per customer account.
Joined on `account_id IN (SELECT id ... WHERE kind = 'holding')`, PostgreSQL estimated the holding legs at the
average legs per account, and on a large ledger planned the invoices check as a loop over every holding leg
once per invoice transaction: 39 s for 22,000 renewals in the bench (issue 20), some 13 minutes for 100,000.
The pins are counts from EXPLAIN ANALYZE (estimated against actual rows, rows filtered out of joins), not
times; with the small ledger of a test PostgreSQL still hashes, so the estimate is what shows the fault."""
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import audit
from billing.models import LedgerEntry

from .factories import PlanFactory
from .test_renewals_set_based import customers_with_orders, run


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.mark.django_db
def test_the_invoices_check_knows_the_holding_account_is_hot(currencies, fund):
    customers_with_orders(100, 1, PlanFactory(), fund)
    assert run().renewed == 100  # 100 invoices paid through one batch holding account: 200 of its legs
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        with CaptureQueriesContext(connection) as queries:
            assert audit.uncovered_invoices() == []
        (statement,) = [query["sql"] for query in queries.captured_queries if "billing_ledgerentry" in query["sql"]]
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement)
        (result,) = cursor.fetchone()
    nodes = list(_nodes((result if isinstance(result, list) else json.loads(result))[0]["Plan"]))
    legs = [node for node in nodes if node.get("Relation Name") == "billing_ledgerentry"]
    assert legs
    for node in legs:  # the estimate of the legs read is the right size (it was 6 for 200)
        assert node["Plan Rows"] * 5 >= node["Actual Rows"], node
    assert sum(node.get("Rows Removed by Join Filter", 0) for node in nodes) <= LedgerEntry.objects.count()
