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
from core.compiled import prepared_sql

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


def _documents_by_full_union(customer, doc_type, start, end):
    """The old documents query: every document of the shown types in one UNION, counted and sorted whole."""
    from billing.selectors import _document_parts

    parts = _document_parts(customer_id=customer.pk, doc_type=doc_type, start=start, end=end,
                            start_day=start.date() if start else None, end_day=end.date() if end else None)
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return union.count(), list(union.order_by("-doc_date", "-doc_id", "doc_type"))


def _tied_documents(customer, fund):
    """Documents sharing one date: four invoices issued then, an act whose month starts then, two credit notes
    and a contract acceptance made then."""
    from billing.models import CreditNote
    from billing.services.corrections import credit_note_issue

    _make_documents(customer, 12)
    fund(customer, "50.00")
    staff = StaffUserFactory()
    for _ in range(2):
        invoice = invoice_issue(customer=customer, kind="order", lines=[LineInput("VPS", 1, Decimal("10.00"))])
        invoice_pay_from_balance(invoice=invoice)
        credit_note_issue(invoice=invoice, reason="r", actor=staff)
    tie = timezone.make_aware(dt.datetime(1950, 3, 1))
    Invoice.objects.filter(pk__in=Invoice.objects.filter(customer=customer).order_by("pk").values("pk")[:4]).update(issued_at=tie)
    Act.objects.filter(pk=Act.objects.filter(customer=customer).order_by("pk")[0].pk).update(period=tie.date())
    ContractAcceptance.objects.filter(customer=customer).update(accepted_at=tie)
    CreditNote.objects.filter(customer=customer).update(created_at=tie)


@pytest.mark.django_db
def test_documents_for_gives_the_full_union_s_count_and_pages_for_every_filter_and_page(currencies, contract, fund):
    """documents_for counts per type and merges each type's newest rows down to the page's end: for every
    filter shape, two customers and every page (first, middle, last, one past the end, empty filters),
    the same count and rows in the same order as counting and sorting the whole union (ties: equal dates
    within and across types)."""
    from billing.selectors import documents_for
    from billing.services.acts import month_bounds

    customers = [UserFactory().customer, UserFactory().customer]
    for customer in customers:
        _make_documents(customer, 40)
    _tied_documents(customers[0], fund)
    april, june = dt.date(1910, 4, 1), dt.date(1950, 6, 1)
    for customer in customers * 2:
        for doc_type in ("", "invoice", "act", "credit_note", "contract"):
            for date_from, date_to in ((None, None), (april, None), (None, june), (april, june), (dt.date(2099, 1, 1), None)):
                start = month_bounds(date_from)[0] if date_from else None
                end = month_bounds(date_to)[1] if date_to else None
                count, expected = _documents_by_full_union(customer, doc_type, start, end)
                rows = documents_for(customer=customer, doc_type=doc_type, date_from=date_from, date_to=date_to)
                assert rows.count() == count == len(expected) and list(rows) == expected
                for size in (1, 7, 20):
                    for first in range(0, count + size, size):
                        assert rows[first:first + size] == expected[first:first + size]
    count, expected = _documents_by_full_union(customers[0], "", None, None)
    tied = [row["doc_type"] for row in expected if row["doc_date"].year == 1950]
    assert count > 40 and sorted(set(tied)) == ["act", "contract", "credit_note", "invoice"] and tied.count("invoice") == 4
    assert documents_for(customer=customers[0], date_from=dt.date(2099, 1, 1)).count() == 0


@pytest.mark.django_db
def test_documents_page_reads_each_type_only_down_to_the_page_s_end(currencies, customer, contract):
    from billing.selectors import documents_for

    _make_documents(customer, 30)
    rows = documents_for(customer=customer)
    with CaptureQueriesContext(connection) as ctx:
        rows[0:5]
        rows[10:15]
    # One prepared statement: each type's part reads down to the page's end (its LIMIT), then the page
    assert [prepared_sql(query["sql"]).count("LIMIT %s)") for query in ctx] == [4, 4]
    assert prepared_sql(ctx[0]["sql"]).endswith("LIMIT %s OFFSET %s")
    depth_5, depth_15 = (query["sql"] for query in ctx)  # EXECUTE cq<n>(... customer id, depth, ..., limit, offset)
    assert depth_5.count(f"{customer.pk}, 5,") == 4 and depth_15.count(f"{customer.pk}, 15,") == 4
    assert depth_5.endswith(", 5, 0)") and depth_15.endswith(", 5, 10)")


@pytest.mark.django_db
def test_the_current_agreement_and_its_acceptances_are_read_in_one_statement(currencies, customer, contract):
    """contract_current_with_acceptances: the newest published version (a draft with a higher number does not
    count), this customer's acceptances of it only (not of the old version, not another customer's)."""
    from billing.selectors import contract_current_with_acceptances, contract_status

    profile = payer_choices(customer)[0]
    company = CompanyPayerFactory(customer=customer)
    old = ContractVersion.objects.get(version=1)
    contract_accept(payer=company, version=old, user=None, ip="198.51.100.1")
    contract_accept(payer=profile, version=contract, user=None, ip="203.0.113.7")
    other = UserFactory().customer
    contract_accept(payer=payer_choices(other)[0], version=contract, user=None, ip="192.0.2.1")
    ContractVersion.objects.create(version=3, title="Draft", text="Not yet")
    with CaptureQueriesContext(connection) as ctx:
        version, accepted = contract_current_with_acceptances(customer)
    assert len(ctx) == 1 and (version.pk, version.version, version.title, version.published_at) == (
        contract.pk, 2, "Customer agreement", contract.published_at)
    payers = payer_choices(customer)
    assert contract_status(customer, version, payers, accepted) == contract_status(customer, contract, payers)
    assert set(accepted) == {profile.pk} and accepted[profile.pk]["ip"] == "203.0.113.7"
    ContractVersion.objects.all().update(published_at=None)
    assert contract_current_with_acceptances(customer) == (None, {})
