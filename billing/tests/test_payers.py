from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import ActivityEvent, Customer
from accounts.selectors import payment_blockers
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice, Payer
from billing.selectors import payer_choices, payer_details
from billing.services.acts import acts_generate, previous_month
from billing.services.contracts import contract_accept, contract_version_publish
from billing.services.errors import BillingError
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance, invoice_payer_choose
from billing.services.payers import (
    payer_country_approve, payer_create, payer_delete, payer_reject, payer_verify,
)

from .factories import CompanyPayerFactory, TaxRateFactory

COMPANY_FORM = {"payer_type": "company", "name": "Erika Mustermann", "company_name": "Acme GmbH", "registration_number": "HRB 1",
                "vat_number": "de 136695976", "street": "Hauptstr. 1", "city": "Berlin", "postcode": "10115", "country": "DE",
                "email": "billing@acme.example"}


@pytest.fixture
def staff(db):
    return StaffUserFactory()


def _issue(customer, price="100.00", kind=Invoice.Kind.ORDER):
    return invoice_issue(customer=customer, kind=kind, lines=[LineInput(description="VPS M", quantity=1, unit_price=Decimal(price))])


@pytest.mark.django_db
def test_profile_payer_mirrors_the_profile_and_is_created_once(currencies, customer, owner):
    first = payer_choices(customer)
    assert payer_choices(customer) == first and Payer.objects.filter(customer=customer).count() == 1
    profile = first[0]
    assert profile.is_profile and profile.name == "" and profile.street == ""  # nothing copied
    customer.city = "Hamburg"
    customer.save()
    details = payer_details(Payer.objects.get(pk=profile.pk))
    assert "Hamburg" in details.address and details.name == owner.get_full_name() and not details.is_company


@pytest.mark.django_db
def test_payer_choices_share_the_customer_instance(currencies, customer, owner, django_assert_num_queries):
    CompanyPayerFactory(customer=customer)  # another payer before the profile payer exists: it is still created
    payers = payer_choices(customer)
    assert [p.is_profile for p in payers] == [True, False] and all(p.customer is customer for p in payers)
    fresh = Customer.objects.get(pk=customer.pk)
    with django_assert_num_queries(1):  # the payers: the profile payer exists now
        payers = payer_choices(fresh)
    with django_assert_num_queries(1):  # the owner, once per request's customer (the invoice page's payment gate and payer details)
        payment_blockers(fresh)
        assert payer_details(payers[0]).name == owner.get_full_name()


@pytest.mark.django_db
def test_company_payer_lifecycle_create_verify_edit_back_to_verification(currencies, client_in, customer, staff):
    response = client_in.post(reverse("billing:payer_create"), COMPANY_FORM)
    assert response.status_code == 302
    payer = Payer.objects.get(customer=customer, is_profile=False)
    assert payer.verification_status == Payer.Verification.PENDING and payer.vat_number == "DE136695976"
    page = client_in.get(reverse("billing:payers")).content.decode()
    assert "Acme GmbH" in page and "Awaiting verification" in page

    payer_verify(payer=payer, staff=staff)
    payer.refresh_from_db()
    assert payer.verification_status == Payer.Verification.VERIFIED and payer.verified_at
    assert ActivityEvent.objects.filter(action="billing.payer_verified", customer=customer, actor=staff).exists()

    client_in.post(reverse("billing:payer_edit", args=[payer.pk]), {**COMPANY_FORM, "email": "accounts@acme.example"})
    payer.refresh_from_db()
    assert payer.verification_status == Payer.Verification.VERIFIED  # contact email is not a company field
    client_in.post(reverse("billing:payer_edit", args=[payer.pk]), {**COMPANY_FORM, "vat_number": "DE129273398"})
    payer.refresh_from_db()
    assert payer.verification_status == Payer.Verification.PENDING and payer.verified_at is None
    client_in.post(reverse("billing:payer_edit", args=[payer.pk]), {**COMPANY_FORM, "payer_type": "private"})
    payer.refresh_from_db()
    assert payer.verification_status == Payer.Verification.NOT_REQUIRED


@pytest.mark.django_db
@pytest.mark.parametrize("change, field", [
    ({"registration_number": ""}, "registration_number"),
    ({"vat_number": "123"}, "vat_number"),
    ({"country": "XX"}, "country"),
    ({"street": ""}, "street"),
    ({"payer_type": "private", "name": ""}, "name"),
    ({"payer_type": "government"}, "payer_type"),
    ({"email": "not-an-email"}, "email"),
])
def test_bad_payer_input_is_refused_and_nothing_is_saved(currencies, client_in, customer, change, field):
    response = client_in.post(reverse("billing:payer_create"), {**COMPANY_FORM, **change})
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not Payer.objects.filter(customer=customer, is_profile=False).exists()


@pytest.mark.django_db
def test_staff_verify_and_reject_in_admin_with_a_reason(currencies, client, customer, staff):
    pending, other = CompanyPayerFactory(customer=customer), CompanyPayerFactory(customer=customer)
    client.force_login(staff)
    url = reverse("admin:billing_payer_changelist")
    client.post(url, {"action": "verify_payers", "_selected_action": [pending.pk]})
    form = client.post(url, {"action": "reject_payers", "_selected_action": [other.pk]})
    assert form.status_code == 200 and b"reason" in form.content  # asks for the reason first
    client.post(url, {"action": "reject_payers", "_selected_action": [other.pk], "apply": "1", "reason": "VAT number unknown to VIES"})
    pending.refresh_from_db()
    other.refresh_from_db()
    assert pending.verification_status == "verified"
    assert (other.verification_status, other.verification_note) == ("rejected", "VAT number unknown to VIES")
    assert ActivityEvent.objects.filter(action="billing.payer_rejected", visible_to_customer=False).count() == 1


@pytest.mark.django_db
def test_choosing_a_payer_changes_the_invoice_snapshot_and_tax(currencies, client_in, customer, staff):
    TaxRateFactory(country="DE", percent=Decimal("19"))
    TaxRateFactory(country="DE", profile_type="company", percent=Decimal("0"), reverse_charge=True)
    TaxRateFactory(country="NL", percent=Decimal("21"))
    invoice = _issue(customer)
    assert (invoice.tax_amount, invoice.total, invoice.payer_company) == (Decimal("19.00"), Decimal("119.00"), "")

    company = payer_verify(payer=CompanyPayerFactory(customer=customer, company_name="Acme GmbH"), staff=staff)
    response = client_in.post(reverse("billing:invoice_payer", args=[invoice.pk]), {"payer": company.pk})
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.payer_id, invoice.payer_company, invoice.payer_vat_number) == (company.pk, "Acme GmbH", company.vat_number)
    assert (invoice.tax_amount, invoice.total, invoice.reverse_charge) == (Decimal("0.00"), Decimal("100.00"), True)
    assert invoice.subtotal == Decimal("100.00")

    dutch = payer_create(customer=customer, data={"payer_type": "private", "name": "Jan Jansen", "street": "Dam 1",
                                                  "city": "Amsterdam", "country": "NL"})
    payer_country_approve(payer=dutch, staff=staff)  # evidence for a country other than the profile's
    invoice_payer_choose(invoice=invoice, payer=dutch)
    invoice.refresh_from_db()
    assert (invoice.payer_name, invoice.payer_country, invoice.tax_label, invoice.total) == ("Jan Jansen", "NL", "VAT 21%", Decimal("121.00"))
    assert "Amsterdam" in client_in.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()


@pytest.mark.django_db
def test_a_paid_invoice_never_changes_payer(currencies, client_in, customer, fund, staff):
    fund(customer, "200.00")
    invoice = _issue(customer)
    invoice_pay_from_balance(invoice=invoice)
    company = payer_verify(payer=CompanyPayerFactory(customer=customer), staff=staff)
    client_in.post(reverse("billing:invoice_payer", args=[invoice.pk]), {"payer": company.pk})
    invoice.refresh_from_db()
    assert invoice.payer_id is None and invoice.payer_company == "" and invoice.status == "paid"
    with pytest.raises(BillingError):
        invoice_payer_choose(invoice=invoice, payer=company)


@pytest.mark.django_db
def test_unverified_company_payer_blocks_payment_until_verified(currencies, client_in, customer, fund, staff):
    fund(customer, "200.00")
    invoice = _issue(customer)
    payer = CompanyPayerFactory(customer=customer, company_name="Pending Ltd")
    invoice_payer_choose(invoice=invoice, payer=payer)
    page = client_in.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert 'data-testid="payment-blocked"' in page and "Pending Ltd is awaiting verification" in page
    assert 'data-testid="pay-from-balance"' not in page
    response = client_in.post(reverse("billing:invoice_pay_balance", args=[invoice.pk]), follow=True)
    assert "awaiting verification" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID
    client_in.post(reverse("billing:invoice_apply_balance", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0

    payer_reject(payer=payer, staff=staff, reason="Registry extract missing")
    assert "Registry extract missing" in client_in.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    payer_verify(payer=payer, staff=staff)
    client_in.post(reverse("billing:invoice_pay_balance", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.payer_company == "Pending Ltd"


@pytest.mark.django_db
def test_delete_unused_payer_archive_used_one_keep_profile(currencies, client_in, customer, fund, staff):
    unused = CompanyPayerFactory(customer=customer)
    used = payer_verify(payer=CompanyPayerFactory(customer=customer), staff=staff)
    fund(customer, "200.00")
    invoice = _issue(customer)
    invoice_payer_choose(invoice=invoice, payer=used)
    invoice_pay_from_balance(invoice=invoice)
    client_in.post(reverse("billing:payer_delete", args=[unused.pk]))
    client_in.post(reverse("billing:payer_delete", args=[used.pk]))
    assert not Payer.objects.filter(pk=unused.pk).exists()
    used.refresh_from_db()
    assert used.archived_at is not None
    assert used not in payer_choices(customer)
    assert client_in.get(reverse("billing:payer_edit", args=[used.pk])).status_code == 404
    assert "archived" in client_in.get(reverse("billing:payers") + "?archived=1").content.decode().lower()
    profile = payer_choices(customer)[0]
    with pytest.raises(BillingError):
        payer_delete(payer=profile)
    invoice.refresh_from_db()
    assert invoice.payer_id == used.pk  # the paid invoice still points at it


@pytest.mark.django_db
def test_another_customers_payer_is_a_404_and_cannot_be_chosen(currencies, client_in, customer):
    stranger = UserFactory().customer
    theirs = CompanyPayerFactory(customer=stranger)
    for name in ("billing:payer_edit", "billing:contract_pdf"):
        assert client_in.get(reverse(name, args=[theirs.pk])).status_code == 404
    assert client_in.post(reverse("billing:payer_delete", args=[theirs.pk])).status_code == 404
    invoice = _issue(customer)
    client_in.post(reverse("billing:invoice_payer", args=[invoice.pk]), {"payer": theirs.pk})
    invoice.refresh_from_db()
    assert invoice.payer_id is None
    other_invoice = _issue(stranger)
    assert client_in.post(reverse("billing:invoice_payer", args=[other_invoice.pk]), {"payer": theirs.pk}).status_code == 404
    with pytest.raises(BillingError):
        invoice_payer_choose(invoice=invoice, payer=theirs)


@pytest.mark.django_db
def test_payer_act_and_contract_admin_pages_open(currencies, client, customer, staff, fund):
    import datetime as dt

    import time_machine
    from django.utils import timezone

    from billing.models import Act, ContractAcceptance, ContractVersion

    for _ in range(3):
        owner = UserFactory()
        CompanyPayerFactory(customer=owner.customer)
        payer_choices(owner.customer)
        with time_machine.travel(timezone.make_aware(dt.datetime.combine(previous_month(), dt.time(12))), tick=False):
            fund(owner.customer, "20.00")
            invoice_pay_from_balance(invoice=_issue(owner.customer, "10.00"))
    acts_generate(period=previous_month())
    version = contract_version_publish(version=ContractVersion.objects.create(version=1, title="A", text="T"), staff=staff)
    for payer in Payer.objects.all():
        contract_accept(payer=payer, version=version, user=None, ip="192.0.2.1")
    client.force_login(staff)
    for name in ("payer", "act", "contractversion", "contractacceptance"):
        assert client.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
    act = Act.objects.first()
    assert client.get(reverse("admin:billing_act_change", args=[act.pk])).status_code == 200
    assert client.get(reverse("admin:billing_contractversion_change", args=[version.pk])).status_code == 200
    assert client.get(reverse("admin:billing_contractversion_add")).status_code == 200
    assert client.get(reverse("admin:billing_contractacceptance_change", args=[ContractAcceptance.objects.first().pk])).status_code == 200
