"""EU VAT numbers (issue 21, item 4): python-stdnum checks format and check digits; VIES (a local SOAP
server on loopback, started here) answers valid, invalid or fails; the consultation number is stored
on the payer and printed on reverse-charge invoices with the seller's VAT id; VIES being down blocks
nothing and is asked again later."""
import io
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from pypdf import PdfReader

from accounts.tests.factories import StaffUserFactory
from billing import vat
from billing.forms import PayerForm
from billing.models import Invoice, Payer
from billing.services.errors import BillingError
from billing.services.invoices import LineInput, invoice_issue, invoice_payer_choose
from billing.services.payers import payer_verify, payers_vies_recheck
from billing.tests.factories import CompanyPayerFactory, TaxRateFactory

VALID_DE, INVALID_DE, BROKEN_DE = "DE136695976", "DE811569869", "DE129273398"  # all pass stdnum's check digits


def _answer(body: str) -> tuple[int, str]:
    envelope = ('<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">'
                "<env:Header/><env:Body>{}</env:Body></env:Envelope>")
    if "<tns:vatNumber>129273398<" in body:
        return 500, envelope.format("<env:Fault><faultcode>env:Server</faultcode><faultstring>MS_UNAVAILABLE</faultstring></env:Fault>")
    valid = "true" if "<tns:vatNumber>136695976<" in body else "false"
    return 200, envelope.format(
        '<ns2:checkVatApproxResponse xmlns:ns2="urn:ec.europa.eu:taxud:vies:services:checkVat:types">'
        "<ns2:countryCode>DE</ns2:countryCode><ns2:vatNumber>136695976</ns2:vatNumber>"
        "<ns2:requestDate>2026-03-10+01:00</ns2:requestDate>"
        f"<ns2:valid>{valid}</ns2:valid><ns2:traderName>Acme GmbH</ns2:traderName><ns2:traderAddress>Berlin</ns2:traderAddress>"
        "<ns2:requestIdentifier>WAPIAAAAZ1234567</ns2:requestIdentifier></ns2:checkVatApproxResponse>")


@pytest.fixture
def vies(settings):
    """A VIES stand-in on 127.0.0.1; yields the request bodies it received."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append(body)
            status, answer = _answer(body)
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.BILLING_VIES_URL = f"http://127.0.0.1:{server.server_address[1]}/taxation_customs/vies/services/checkVatService"
    settings.BILLING_SELLER_VAT_ID = "NL004495445B01"
    yield received
    server.shutdown()
    server.server_close()


def test_stdnum_refuses_wrong_check_digits_and_compacts_good_numbers():
    assert vat.vat_number_clean("de 136 695 976") == VALID_DE
    with pytest.raises(ValueError):
        vat.vat_number_clean("DE136695977")
    form = PayerForm(data={"payer_type": "company", "company_name": "Acme GmbH", "registration_number": "HRB 1",
                           "vat_number": "DE136695977", "street": "Hauptstr. 1", "city": "Berlin", "country": "DE"})
    assert not form.is_valid() and "check the digits" in form.errors["vat_number"][0]


def test_vies_valid_invalid_and_down(vies, settings):
    valid = vat.vies_check(VALID_DE)
    assert (valid.status, valid.consultation_number, valid.name) == (vat.VALID, "WAPIAAAAZ1234567", "Acme GmbH")
    assert "<tns:requesterCountryCode>NL</tns:requesterCountryCode><tns:requesterVatNumber>004495445B01<" in vies[0]
    assert vat.vies_check(INVALID_DE).status == vat.INVALID
    fault = vat.vies_check(BROKEN_DE)
    assert (fault.status, fault.error) == (vat.UNAVAILABLE, "MS_UNAVAILABLE")
    settings.BILLING_VIES_URL = "http://127.0.0.1:9/closed"
    assert vat.vies_check(VALID_DE).status == vat.UNAVAILABLE


@pytest.mark.django_db
def test_verification_asks_vies_invalid_refuses_and_down_does_not_block(vies, currencies, customer):
    staff = StaffUserFactory()
    invalid = CompanyPayerFactory(customer=customer, vat_number=INVALID_DE)
    with pytest.raises(BillingError) as raised:
        payer_verify(payer=invalid, staff=staff)
    assert raised.value.code == "vies_invalid"
    invalid.refresh_from_db()
    assert (invalid.verification_status, invalid.vies_status) == (Payer.Verification.PENDING, vat.INVALID)

    down = payer_verify(payer=CompanyPayerFactory(customer=customer, vat_number=BROKEN_DE), staff=staff)
    down.refresh_from_db()
    assert (down.verification_status, down.vies_status, down.vies_consultation_number) == ("verified", vat.UNAVAILABLE, "")
    # VIES answers later: the recheck job stores the verdict; a number now invalid loses its verification.
    Payer.objects.filter(pk=down.pk).update(vat_number=INVALID_DE)
    assert payers_vies_recheck() == 1
    down.refresh_from_db()
    assert (down.verification_status, down.vies_status) == (Payer.Verification.PENDING, vat.INVALID)


@pytest.mark.django_db
def test_reverse_charge_invoice_prints_the_consultation_and_the_seller_vat_id(vies, settings, currencies, client, owner, customer):
    settings.BILLING_SELLER_COUNTRY = "NL"
    TaxRateFactory(country="NL", percent=Decimal("21"))
    TaxRateFactory(country="DE", percent=Decimal("19"))
    TaxRateFactory(country="DE", profile_type="company", percent=Decimal("0"), reverse_charge=True)
    customer.country = "NL"
    customer.save()
    payer = payer_verify(payer=CompanyPayerFactory(customer=customer, vat_number=VALID_DE), staff=StaffUserFactory())
    payer.refresh_from_db()
    assert (payer.vies_status, payer.vies_consultation_number) == (vat.VALID, "WAPIAAAAZ1234567")
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput("VPS", 1, Decimal("100.00"))])
    invoice = invoice_payer_choose(invoice=invoice, payer=payer)
    assert (invoice.reverse_charge, invoice.total) == (True, Decimal("100.00"))
    client.force_login(owner)
    response = client.get(reverse("billing:invoice_pdf", args=[invoice.pk]))
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "VAT ID: NL004495445B01" in text
    assert "consultation number WAPIAAAAZ1234567" in text and "Reverse charge" in text
