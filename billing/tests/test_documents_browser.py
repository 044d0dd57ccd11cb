import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from pypdf import PdfReader

from accounts.tests.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory
from billing.models import ContractVersion, Invoice, Payer
from billing.services.acts import acts_generate, previous_month
from billing.services.contracts import contract_version_publish
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.payments import payment_record

from conftest import ARTIFACTS

from .factories import TaxRateFactory, make_currencies

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _staff_verifies_in_admin(browser, live_server, payer: Payer, screenshot_path):
    staff = StaffUserFactory()
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    admin = context.new_page()
    admin.goto("/admin/login/")
    admin.fill("#id_username", staff.username)
    admin.fill("#id_password", DEFAULT_PASSWORD)
    admin.click("input[type=submit]")
    admin.goto("/admin/billing/payer/?verification_status__exact=pending")
    admin.check(f"input[name=_selected_action][value='{payer.pk}']")
    admin.select_option("select[name=action]", "verify_payers")
    admin.click("button[name=index]")
    admin.get_by_text("1 payer(s) verified.").wait_for()
    admin.screenshot(path=str(screenshot_path), full_page=True)
    context.close()


def test_company_payer_verified_chosen_on_invoice_then_documents(page, login, screenshot, browser, live_server):
    make_currencies()
    TaxRateFactory(country="DE", percent=Decimal("19"))
    TaxRateFactory(country="DE", profile_type="company", percent=Decimal("0"), reverse_charge=True)
    owner = UserFactory()
    customer = owner.customer
    last_month = previous_month()
    with time_machine.travel(timezone.make_aware(dt.datetime.combine(last_month.replace(day=12), dt.time(10))), tick=False):
        payment_record(idempotency_key="browser:fund", customer=customer, amount=Decimal("300.00"), currency="EUR",
                       method="bank_transfer")
        invoice_pay_from_balance(invoice=invoice_issue(
            customer=customer, kind=Invoice.Kind.RENEWAL, lines=[LineInput("VPS Start — 1 month", 1, Decimal("20.00"))]))
    act = acts_generate(period=last_month)[0]  # what the monthly beat job does
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput("VPS Pro — 1 month", 1, Decimal("50.00"))])
    version = ContractVersion.objects.create(version=1, title="Customer agreement", text="1. Subject\n\nHosting services.")
    contract_version_publish(version=version, staff=None)

    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/billing/payers/")
    page.get_by_test_id("payer-add").click()
    page.check("input[name=payer_type][value=company]")
    page.fill("#id_name", "Erika Mustermann")
    page.fill("#id_company_name", "Acme Cloud GmbH")
    page.fill("#id_registration_number", "HRB 98765")
    page.fill("#id_vat_number", "DE136695976")
    page.fill("#id_street", "Hauptstr. 5")
    page.fill("#id_city", "Berlin")
    page.fill("#id_postcode", "10115")
    page.select_option("#id_country", "DE")
    screenshot("billing-payer-form")
    page.get_by_test_id("payer-save").click()
    page.wait_for_url("**/billing/payers/")
    payer = Payer.objects.get(company_name="Acme Cloud GmbH")
    row = page.get_by_test_id(f"payer-row-{payer.pk}")
    assert "Awaiting verification" in row.inner_text()
    screenshot("billing-payers-awaiting-verification")

    # Choosing it before verification blocks payment with a clear message.
    page.goto(f"/billing/invoices/{invoice.pk}/")
    page.select_option("#id_payer", str(payer.pk))
    page.get_by_test_id("invoice-payer-apply").click()
    page.wait_for_load_state("networkidle")
    assert "awaiting verification" in page.get_by_test_id("payment-blocked").inner_text()
    screenshot("billing-invoice-payer-unverified")

    _staff_verifies_in_admin(browser, live_server, payer, ARTIFACTS / "billing-admin-payer-verified.png")
    page.goto("/billing/payers/")
    assert "Verified" in page.get_by_test_id(f"payer-row-{payer.pk}").inner_text()

    page.goto(f"/billing/invoices/{invoice.pk}/")
    page.select_option("#id_payer", str(payer.pk))  # re-choose: the snapshot and tax follow the verified company
    page.get_by_test_id("invoice-payer-apply").click()
    page.wait_for_load_state("networkidle")
    assert "Acme Cloud GmbH" in page.get_by_test_id("invoice-payer").inner_text()
    assert page.get_by_test_id("invoice-total").inner_text() == "€50.00"  # reverse charge, no VAT
    screenshot("billing-invoice-company-payer")
    page.get_by_test_id("pay-from-balance").click()
    page.wait_for_load_state("networkidle")
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.payer_company == "Acme Cloud GmbH"

    page.goto("/billing/documents/")
    assert page.get_by_test_id(f"document-act-{act.pk}").is_visible()
    assert page.get_by_test_id(f"document-invoice-{invoice.pk}").is_visible()
    screenshot("billing-documents")
    href = page.get_by_test_id(f"document-download-act-{act.pk}").get_attribute("href")
    pdf = page.request.get(href)
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.body())).pages[0].extract_text()
    assert act.number in text and "€23.80" in text  # 20.00 + 19% VAT

    page.get_by_test_id(f"contract-accept-{payer.pk}").click()
    page.wait_for_load_state("networkidle")
    assert "Accepted" in page.get_by_test_id(f"contract-row-{payer.pk}").inner_text()
    page.select_option("#id_type", "act")
    page.get_by_test_id("documents-filter-apply").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_test_id(f"document-act-{act.pk}").is_visible()
    assert page.get_by_test_id(f"document-invoice-{invoice.pk}").count() == 0
    screenshot("billing-documents-acts-contract-accepted")
