"""Russian outside the pages: every notification email (subject, text, HTML) and the invoice PDF."""
import io
from decimal import Decimal

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.html import strip_tags
from pypdf import PdfReader

from accounts.tests.factories import UserFactory
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue
from billing.tests.factories import TaxRateFactory, make_currencies
from notifications.kinds import Kind

from .english import english_leftovers

KINDS = sorted(Kind.values) if hasattr(Kind, "values") else sorted(v for k, v in vars(Kind).items() if k.isupper())


@pytest.mark.parametrize("kind", KINDS)
def test_notification_emails_are_russian(kind):
    with translation.override("ru"):
        parts = [render_to_string(f"notifications/kinds/{kind}.{suffix}", {"category": "support"})
                 for suffix in ("subject.txt", "txt", "html")]
    leftovers = english_leftovers(strip_tags("\n".join(parts)), [settings.PORTAL_NAME])
    assert not leftovers, f"{kind}: {leftovers}"


@pytest.mark.django_db
def test_invoice_pdf_is_russian(client):
    make_currencies()
    owner = UserFactory(customer__language="ru")
    TaxRateFactory(country=owner.customer.country)
    invoice = invoice_issue(customer=owner.customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS-1", quantity=2, unit_price=Decimal("9.50"))])
    client.force_login(owner)
    response = client.get(reverse("billing:invoice_pdf", args=[invoice.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "Счёт" in text or "Счет" in text
    customer = owner.customer
    data = [settings.BILLING_SELLER_DETAILS, settings.BILLING_BANK_DETAILS, *settings.BILLING_SELLER_DETAILS.splitlines(),
            settings.PORTAL_NAME, invoice.payer_name, invoice.payer_address, *invoice.payer_address.splitlines(),
            customer.street, customer.city, owner.email]
    assert not english_leftovers(text, [d for d in data if d]), text
