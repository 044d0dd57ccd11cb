import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from accounts.models import ActivityEvent
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Act, ContractAcceptance, ContractVersion, Invoice, InvoiceLine
from billing.selectors import payer_choices
from billing.services.acts import acts_generate, previous_month
from billing.services.contracts import contract_accept, contract_version_publish
from billing.services.errors import BillingError
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.payers import payer_profile_get_or_create

from .factories import CompanyPayerFactory


@pytest.fixture
def contract(db):
    staff = StaffUserFactory()
    contract_version_publish(version=ContractVersion.objects.create(version=1, title="Customer agreement", text="Old terms."), staff=staff)
    version = ContractVersion.objects.create(version=2, title="Customer agreement",
                                             text="1. Subject\n\nThe provider rents virtual servers to the customer.")
    return contract_version_publish(version=version, staff=staff)


def _pdf_text(response) -> str:
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)


@pytest.mark.django_db
def test_contract_acceptance_is_recorded_with_time_ip_user_and_payer(currencies, client_in, owner, customer, contract):
    payer = CompanyPayerFactory(customer=customer, company_name="Acme GmbH")
    before = timezone.now()
    url = reverse("billing:contract_accept", args=[payer.pk])
    assert client_in.get(url).status_code == 405  # GET never accepts
    response = client_in.post(url, {"version": contract.pk}, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302
    client_in.post(url, {"version": contract.pk}, REMOTE_ADDR="198.51.100.1")  # double click
    acceptance = ContractAcceptance.objects.get()
    assert (acceptance.version, acceptance.payer, acceptance.user, acceptance.ip) == (contract, payer, owner, "203.0.113.7")
    assert acceptance.accepted_at >= before and acceptance.payer_details["company"] == "Acme GmbH"
    assert ActivityEvent.objects.filter(action="billing.contract_accepted", customer=customer, ip="203.0.113.7").exists()

    text = _pdf_text(client_in.get(reverse("billing:contract_acceptance_pdf", args=[acceptance.pk])))
    assert "Acme GmbH" in text and payer.vat_number in text and "203.0.113.7" in text and "virtual servers" in text
    page = client_in.get(reverse("billing:documents")).content.decode()
    assert f'data-testid="document-contract-{acceptance.pk}"' in page


@pytest.mark.django_db
def test_a_stale_version_is_not_accepted(currencies, client_in, customer, contract):
    profile = payer_choices(customer)[0]
    old = ContractVersion.objects.get(version=1)
    client_in.post(reverse("billing:contract_accept", args=[profile.pk]), {"version": old.pk})
    client_in.post(reverse("billing:contract_accept", args=[profile.pk]), {"version": "junk"})
    assert not ContractAcceptance.objects.exists()
    draft = ContractVersion.objects.create(version=3, title="Draft", text="Not yet")
    with pytest.raises(BillingError):
        contract_accept(payer=profile, version=draft, user=None)


@pytest.mark.django_db
def test_contract_pdf_is_made_out_to_the_payer(currencies, client_in, customer, owner, contract):
    profile = payer_choices(customer)[0]
    text = _pdf_text(client_in.get(reverse("billing:contract_pdf", args=[profile.pk])))
    assert owner.get_full_name() in text and customer.city in text and "Version 2" in text and "Not accepted yet" in text


@pytest.mark.django_db
def test_another_customers_contract_and_documents_are_404(currencies, client_in, contract):
    stranger = UserFactory()
    payer = payer_choices(stranger.customer)[0]
    acceptance = contract_accept(payer=payer, version=contract, user=stranger, ip="192.0.2.1")
    assert client_in.get(reverse("billing:contract_acceptance_pdf", args=[acceptance.pk])).status_code == 404
    assert client_in.get(reverse("billing:contract_pdf", args=[payer.pk])).status_code == 404
    assert client_in.post(reverse("billing:contract_accept", args=[payer.pk]), {"version": contract.pk}).status_code == 404
    assert f"document-contract-{acceptance.pk}" not in client_in.get(reverse("billing:documents")).content.decode()


def _make_documents(customer, n):
    """n documents: invoices, acts and contract acceptances, inserted in bulk."""
    payer = payer_profile_get_or_create(customer=customer)
    start = Invoice.objects.count()
    invoices = Invoice.objects.bulk_create([
        Invoice(number=f"2098-{start + i:06d}", year=2098, sequence=start + i, customer=customer, kind="order", currency="EUR",
                subtotal=Decimal("1"), total=Decimal("1"), payer_name="P") for i in range(1, n // 2 + 1)])
    InvoiceLine.objects.bulk_create([InvoiceLine(invoice=i, description="x", quantity=1, unit_price=Decimal("1"), amount=Decimal("1"))
                                     for i in invoices])
    first = Act.objects.count()
    Act.objects.bulk_create([
        Act(number=f"ACT-2098-{first + i:06d}", year=2098, sequence=first + i, customer=customer, payer=payer, currency="EUR",
            period=dt.date(1900 + first + i, 1, 1), subtotal=Decimal("2"), total=Decimal("2"), payer_name="P")
        for i in range(1, n - n // 2)])
    version = ContractVersion.objects.create(version=100 + ContractVersion.objects.count(), title="A", text="T",
                                             published_at=timezone.now())
    ContractAcceptance.objects.create(customer=customer, payer=payer, version=version, payer_label="P")


@pytest.mark.django_db
def test_documents_list_query_count_is_the_same_for_10_and_300_documents(currencies, client_in, customer, contract):
    def count(query=""):
        with CaptureQueriesContext(connection) as ctx:
            response = client_in.get(reverse("billing:documents") + query)
            assert response.status_code == 200
        return len(ctx), response

    _make_documents(customer, 10)
    small, response = count()
    assert len(response.context["page"].object_list) == 10
    _make_documents(customer, 290)
    large, response = count()
    assert response.context["page"].paginator.count == 300
    assert large == small
    assert count("?type=act")[0] == small


@pytest.mark.django_db
def test_documents_filter_by_type_and_period(currencies, client_in, customer, fund):
    last_month = previous_month()
    with time_machine.travel(timezone.make_aware(dt.datetime.combine(last_month.replace(day=10), dt.time(9))), tick=False):
        fund(customer, "50.00")
        invoice = invoice_issue(customer=customer, kind="order", lines=[LineInput("VPS", 1, Decimal("10.00"))])
        invoice_pay_from_balance(invoice=invoice)
    act = acts_generate(period=last_month)[0]
    month = last_month.strftime("%Y-%m")

    def shown(query):
        page = client_in.get(reverse("billing:documents") + query).content.decode()
        return {kind for kind, pk in (("invoice", invoice.pk), ("act", act.pk)) if f'data-testid="document-{kind}-{pk}"' in page}

    assert shown("") == {"invoice", "act"}
    assert shown("?type=act") == {"act"}
    assert shown("?type=invoice") == {"invoice"}
    assert shown(f"?date_from={month}&date_to={month}") == {"invoice", "act"}
    assert shown(f"?date_from={timezone.localdate():%Y-%m}") == set()
    assert shown("?date_from=2001-01&date_to=2001-12") == set()
    response = client_in.get(reverse("billing:documents") + "?date_from=2026-05&date_to=2026-01")
    assert "before its start" in response.content.decode()
    assert client_in.get(reverse("billing:documents") + "?type=bogus&date_from=garbage").status_code == 200


@pytest.mark.django_db
def test_documents_and_payers_pages_in_russian(currencies, client_in, customer, contract):
    customer.language = "ru"
    customer.save()
    CompanyPayerFactory(customer=customer)
    documents = client_in.get(reverse("billing:documents")).content.decode()
    assert "Принимаю" in documents and "Все документы" in documents
    payers = client_in.get(reverse("billing:payers")).content.decode()
    assert "Ожидает проверки" in payers and "По умолчанию · из профиля" in payers


@pytest.mark.django_db
def test_documents_for_runs_the_compiled_union_with_each_call_s_customer_and_dates(currencies, contract):
    """documents_for compiles the UNION once per filter shape: every shape, for two customers, gives the rows
    the ORM gives for the same filters, in the same order."""
    from billing.selectors import _documents_union, documents_for
    from billing.services.acts import month_bounds

    customers = [UserFactory().customer, UserFactory().customer]
    for customer in customers:
        _make_documents(customer, 40)
    april, june = dt.date(1910, 4, 1), dt.date(1930, 6, 1)
    for customer in customers * 2:
        for doc_type in ("", "invoice", "act", "contract"):
            for date_from, date_to in ((None, None), (april, None), (None, june), (april, june)):
                start = month_bounds(date_from)[0] if date_from else None
                end = month_bounds(date_to)[1] if date_to else None
                expected = list(_documents_union(customer_id=customer.pk, doc_type=doc_type, start=start, end=end)
                                .order_by("-doc_date", "-doc_id"))
                rows = documents_for(customer=customer, doc_type=doc_type, date_from=date_from, date_to=date_to)
                assert rows.count() == len(expected) and rows[0:7] == expected[:7] and list(rows) == expected
                assert rows[5:9] == expected[5:9]
    assert documents_for(customer=customers[0], date_from=april, date_to=june).count() < documents_for(customer=customers[0]).count()
