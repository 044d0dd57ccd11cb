"""audit_ledger reads the ledger once: its work grows with the ledger, not with the ledger squared.

A provider account (holding, clearing) is hot: a leg per payment, against a few legs per customer account.
Joined on `account_id IN (SELECT id ... WHERE kind = 'holding')`, PostgreSQL estimated the hot account's legs
at the average legs per account, and on a large ledger planned the invoices check as a loop over every holding
leg once per invoice transaction: 39 s for 22,000 renewals in the bench (issue 20), some 13 minutes for 100,000;
the clearing check the same per payment. With a test's small ledger PostgreSQL still hashes, so the pin is the
estimate itself (EXPLAIN ANALYZE's planned against actual rows: a count, not a time)."""
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import audit

from .factories import PlanFactory
from .test_renewals_set_based import customers_with_orders, run


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.mark.django_db
@pytest.mark.parametrize("check", ["uncovered_invoices", "clearing_mismatches"])
def test_the_checks_know_a_provider_account_is_hot(currencies, fund, check):
    customers_with_orders(100, 1, PlanFactory(), fund)  # 100 top-ups through one clearing account
    assert run().renewed == 100  # 100 invoices paid through one batch holding account: 200 of its legs
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        with CaptureQueriesContext(connection) as queries:
            assert getattr(audit, check)() == []
        # the check's join of payments or invoices to the provider account's legs
        statement = next(query["sql"] for query in queries.captured_queries if "LEFT JOIN billing_ledgerentry" in query["sql"])
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement)
        (result,) = cursor.fetchone()
    plan = (result if isinstance(result, list) else json.loads(result))[0]["Plan"]
    legs = [node for node in _nodes(plan) if node.get("Relation Name") == "billing_ledgerentry"]
    assert legs
    for node in legs:  # the legs read are estimated at the right size (6 for 200 and for 100 before)
        assert node["Plan Rows"] * 5 >= node["Actual Rows"], node
