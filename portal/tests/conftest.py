from billing.tests.audit_after_test import pytest_runtest_call  # noqa: F401 - the ledger audit after every test
