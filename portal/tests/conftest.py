import importlib

import pytest
from django.apps import apps

from billing.tests.audit_after_test import pytest_runtest_call  # noqa: F401 - the ledger audit after every test


@pytest.fixture
def default_departments():
    """Transactional tests elsewhere flush the tables, data migrations included: put the ticket
    departments back (tickets' migration function, idempotent). Needs the test's own DB marker."""
    migration = importlib.import_module("tickets.migrations.0002_default_departments_and_ticket_numbers")
    migration.create_departments(apps, None)
