"""pytest hook: run the ledger audit after every passing database test of the money paths.

Imported into billing's, orders' and portal's conftest.py; a test that corrupts the ledger on purpose is
marked `ledger_corrupted_on_purpose`. The slow fault tests (`slow_fault`: they restart or kill the servers,
and run the audit themselves at the right moment) are left out.
"""
import pytest


def _uses_database(item) -> bool:
    names = getattr(item, "fixturenames", ())
    return item.get_closest_marker("django_db") is not None or "db" in names or "transactional_db" in names


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # a failing test raises here: its own failure is the one to report
    skip = item.get_closest_marker("ledger_corrupted_on_purpose") or item.get_closest_marker("slow_fault")
    if _uses_database(item) and skip is None:
        from billing.audit import audit

        failures = [f"[{check}] {failure}" for check, items in audit().items() for failure in items]
        if failures:
            pytest.fail("audit_ledger failed after the test:\n" + "\n".join(failures), pytrace=False)
    return result
