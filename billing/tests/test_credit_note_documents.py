"""Credit notes as documents (issue 21, item 5): own gap-free series, a PDF naming the invoice it
corrects with its tax at the invoice's rate, listed in Documents, and another customer's is a 404."""
import io
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from pypdf import PdfReader

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice
from billing.services.corrections import credit_note_issue
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.tests.factories import TaxRateFactory

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)


def _pdf_text(response) -> str:
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)


def _paid_invoice(customer, fund) -> Invoice:
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput("VPS Start", 1, Decimal("20.00"))])
    fund(customer, str(invoice.total))
    assert invoice_pay_from_balance(invoice=invoice)
    return invoice


@pytest.mark.django_db
def test_credit_notes_are_numbered_listed_and_printed_against_their_invoice(settings, currencies, client_in, customer, fund):
    settings.BILLING_SELLER_COUNTRY = "NL"
    TaxRateFactory(country="DE", percent=Decimal("19"), label="VAT")
    staff = StaffUserFactory()
    with time_machine.travel(T0, tick=False):
        invoice = _paid_invoice(customer, fund)  # 20.00 + 3.80 VAT = 23.80
        first = credit_note_issue(invoice=invoice, reason="Downtime credit", actor=staff, amount=Decimal("11.90"))
        second = credit_note_issue(invoice=invoice, reason="Cancelled", actor=staff)
    assert (first.number, second.number) == ("CN-2026-000001", "CN-2026-000002")
    # By hand: 11.90 of 23.80 is half: VAT 1.90, net 10.00; the rest takes the remainder.
    assert (first.amount, first.tax_amount, second.amount, second.tax_amount) == (
        Decimal("11.90"), Decimal("1.90"), Decimal("11.90"), Decimal("1.90"))

    page = client_in.get(reverse("billing:documents"), {"type": "credit_note"})
    rows = page.context["page"].object_list
    assert [(row["doc_type"], row["doc_number"], row["doc_status"]) for row in rows] == [
        ("credit_note", "CN-2026-000002", invoice.number), ("credit_note", "CN-2026-000001", invoice.number)]
    assert reverse("billing:credit_note_pdf", args=[first.pk]).encode() in page.content
    everything = client_in.get(reverse("billing:documents")).context["page"].object_list
    assert {row["doc_type"] for row in everything} == {"invoice", "credit_note"}

    text = _pdf_text(client_in.get(reverse("billing:credit_note_pdf", args=[first.pk])))
    assert "CN-2026-000001" in text and f"Corrects invoice {invoice.number}" in text and "Downtime credit" in text
    assert "−€10.00" in text and "−€1.90" in text and "−€11.90" in text and "VAT 19%" in text


@pytest.mark.django_db
def test_another_customers_credit_note_is_404(currencies, client_in, fund):
    stranger = UserFactory().customer
    invoice = _paid_invoice(stranger, fund)
    note = credit_note_issue(invoice=invoice, reason="x", actor=StaffUserFactory())
    assert client_in.get(reverse("billing:credit_note_pdf", args=[note.pk])).status_code == 404
    assert not client_in.get(reverse("billing:documents")).context["page"].object_list
