"""Billing's sections of "export my data" and its part of account erasure (accounts.personal_data)."""
import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from accounts.personal_data import exporters
from accounts.services.deletion import customer_erase
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Act, ContractAcceptance, ContractVersion, Invoice, Payer
from billing.services.acts import acts_generate, previous_month
from billing.services.contracts import contract_accept, contract_version_publish
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance, invoice_payer_choose
from billing.services.payers import PAYER_PERSONAL_FIELDS, payer_create, payer_profile_get_or_create, payer_verify

from .factories import CompanyPayerFactory

# Fixed moments: a module-level "last month" computed at collection time is another month once the
# suite runs past a month end.
IN_LAST_MONTH = dt.datetime(2027, 5, 14, 12, 0, tzinfo=dt.timezone.utc)
ACTS_RUN = dt.datetime(2027, 6, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def documents(currencies, customer, owner, fund):
    """A verified company payer with a paid invoice, last month's act and an accepted contract."""
    staff = StaffUserFactory()
    company = payer_verify(payer=CompanyPayerFactory(customer=customer, company_name="Acme GmbH", name="Erika Muster",
                                                     email="erika@acme.example", vat_number="DE123456789"), staff=staff)
    private = payer_create(customer=customer, data={"payer_type": "private", "name": "Max Private", "country": "DE",
                                                    "street": "Gartenweg 7", "city": "Bonn", "postcode": "53111"})
    with time_machine.travel(IN_LAST_MONTH, tick=False):
        fund(customer, "100.00")
        invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                                lines=[LineInput(description="VPS M", quantity=1, unit_price=Decimal("20.00"))])
        invoice_payer_choose(invoice=invoice, payer=company)
        assert invoice_pay_from_balance(invoice=invoice)
    with time_machine.travel(ACTS_RUN, tick=False):
        (act,) = acts_generate(period=previous_month())
    version = contract_version_publish(version=ContractVersion.objects.create(version=1, title="Service agreement", text="Terms."),
                                       staff=staff)
    acceptance = contract_accept(payer=company, version=version, user=owner, ip="203.0.113.7")
    return {"company": company, "private": private, "invoice": invoice, "act": act, "acceptance": acceptance}


@pytest.mark.django_db
def test_export_has_payers_acts_and_contract_acceptances_of_this_customer_only(customer, owner, documents):
    stranger = UserFactory().customer
    CompanyPayerFactory(customer=stranger, company_name="Stranger Ltd")
    payer_profile_get_or_create(customer=customer)
    sections = exporters()

    payers = sections["payers"](customer)
    assert [(row["from_profile"], row["company"] or row["name"]) for row in payers] == [
        (False, "Acme GmbH"), (False, "Max Private"), (True, owner.get_full_name())]
    assert payers[0]["vat_number"] == "DE123456789" and payers[0]["verification_status"] == Payer.Verification.VERIFIED
    assert "Gartenweg 7" in payers[1]["address"]
    assert customer.city in payers[2]["address"]  # the profile payer's details come from the profile

    (act,) = sections["acts"](customer)
    assert act["number"] == documents["act"].number and act["payer_company"] == "Acme GmbH" and act["total"] == Decimal("20.00")
    assert [line["invoice"] for line in act["lines"]] == [documents["invoice"].number]

    (acceptance,) = sections["contract_acceptances"](customer)
    assert acceptance["version"] == 1 and acceptance["payer"] == "Acme GmbH" and acceptance["ip"] == "203.0.113.7"
    assert acceptance["payer_details"]["vat_number"] == "DE123456789"

    assert sections["payers"](stranger)[0]["company"] == "Stranger Ltd"
    assert sections["acts"](stranger) == [] and sections["contract_acceptances"](stranger) == []
    json.dumps([payers, act, acceptance], default=str)  # rows are serializable as the export writes them


@pytest.mark.django_db
def test_erasure_anonymizes_payers_but_documents_keep_their_printed_details(customer, documents):
    profile = payer_profile_get_or_create(customer=customer)
    stranger_payer = CompanyPayerFactory(customer=UserFactory().customer, company_name="Stranger Ltd")

    customer_erase(customer=customer, actor=StaffUserFactory())

    for payer in (documents["company"], documents["private"]):
        payer.refresh_from_db()
        assert all(getattr(payer, field) == "" for field in PAYER_PERSONAL_FIELDS), payer.pk
        assert payer.archived_at is not None
    assert Payer.objects.get(pk=profile.pk).archived_at is None  # mirrors the (anonymized) profile, stores nothing
    stranger_payer.refresh_from_db()
    assert stranger_payer.company_name == "Stranger Ltd" and stranger_payer.archived_at is None

    invoice = Invoice.objects.get(pk=documents["invoice"].pk)
    act = Act.objects.get(pk=documents["act"].pk)
    acceptance = ContractAcceptance.objects.get(pk=documents["acceptance"].pk)
    assert invoice.payer_company == act.payer_company == acceptance.payer_label == "Acme GmbH"
    assert invoice.payer_vat_number == act.payer_vat_number == "DE123456789"
    assert exporters()["payers"](customer)[0]["company"] == ""
    call_command("audit_ledger")
