"""Document number series take their year from the provider's time zone (`TIME_ZONE`), never from the
time zone a customer's request activated (issue 15, item 12)."""
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import Customer
from billing import bulk
from billing.models import Invoice
from billing.services.corrections import credit_note_issue
from billing.services.invoices import LineInput, invoice_issue

pytestmark = pytest.mark.django_db

NEW_YEARS_EVE_NOON_UTC = datetime(2026, 12, 31, 12, 0, tzinfo=dt_timezone.utc)
KIRITIMATI = "Pacific/Kiritimati"  # UTC+14: already 1 January 2027 at that moment


def _issue(customer):
    return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                         lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("10.00"))])


@time_machine.travel(NEW_YEARS_EVE_NOON_UTC, tick=False)
def test_customer_time_zone_does_not_move_the_invoice_year(currencies, customer):
    Customer.objects.filter(pk=customer.pk).update(timezone=KIRITIMATI)
    with timezone.override(KIRITIMATI):  # what CustomerLocaleMiddleware activates for this customer's requests
        from_request = _issue(customer)
    from_job = _issue(customer)
    assert (from_request.number, from_job.number) == ("2026-000001", "2026-000002")


@time_machine.travel(NEW_YEARS_EVE_NOON_UTC, tick=False)
def test_batch_numbering_and_credit_notes_use_the_provider_year(currencies, customer, fund):
    fund(customer, "100.00")
    with timezone.override(KIRITIMATI), transaction.atomic():
        [result] = bulk.invoices_issue_and_pay(kind=Invoice.Kind.RENEWAL, charges=[bulk.Charge(
            customer=customer, currency="EUR", description="VPS", unit_price=Decimal("10.00"))])
    assert result.number == "2026-000001" and result.paid
    with timezone.override(KIRITIMATI):
        note = credit_note_issue(invoice=Invoice.objects.get(pk=result.invoice_id), reason="test", actor=None)
    assert note.number == "CN-2026-000001"


@time_machine.travel(NEW_YEARS_EVE_NOON_UTC, tick=False)
@override_settings(TIME_ZONE=KIRITIMATI)
def test_a_provider_ahead_of_utc_numbers_in_its_own_new_year(currencies, customer):
    with timezone.override("UTC"):
        assert _issue(customer).number == "2027-000001"
