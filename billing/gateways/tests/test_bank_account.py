"""One set of bank settings (BILLING_BANK_ACCOUNT) feeds both the open invoice's PDF and the bank-transfer panel."""
import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

ACCOUNT = {"beneficiary": "HostPortal B.V.", "bank_name": "ING Bank", "iban": "NL91ABNA0417164300", "bic": "INGBNL2A",
           "address": "Bijlmerdreef 106, Amsterdam"}


def _pdf_text(client, invoice) -> str:
    response = client.get(reverse("billing:invoice_pdf", args=[invoice.pk]))
    assert response.status_code == 200
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)


@pytest.mark.django_db
def test_invoice_pdf_and_pay_page_show_the_same_bank_account(settings, client, owner, gateways_on, customer, make_invoice):
    settings.BILLING_BANK_ACCOUNT = ACCOUNT
    invoice = make_invoice(customer, "30.00")
    client.force_login(owner)

    text = _pdf_text(client, invoice)
    page = client.get(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk})).content.decode()

    for value in ACCOUNT.values():
        assert value in text and value in page, value
    assert f"Payment reference: {invoice.number}" in text
    assert f'data-testid="bank-reference">{invoice.number}<' in page


@pytest.mark.django_db
def test_without_beneficiary_and_iban_no_bank_details_anywhere(settings, client, owner, gateways_on, customer, make_invoice):
    settings.BILLING_BANK_ACCOUNT = {**ACCOUNT, "iban": ""}
    invoice = make_invoice(customer, "30.00")
    client.force_login(owner)

    assert "Bank details" not in _pdf_text(client, invoice)
    page = client.get(reverse("gateways:pay_invoice", kwargs={"invoice_id": invoice.pk})).content.decode()
    assert 'data-testid="bank-transfer"' not in page and "ING Bank" not in page
