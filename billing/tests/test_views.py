import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import UserFactory
from billing.models import Currency, Invoice
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.payments import payment_record


def _issue(customer, price="10.00", kind=Invoice.Kind.ORDER):
    return invoice_issue(customer=customer, kind=kind, lines=[LineInput(description="VPS M", quantity=1, unit_price=Decimal(price))])


@pytest.mark.django_db
def test_pages_render(currencies, client_in, customer, fund):
    fund(customer, "50.00")
    invoice = _issue(customer, "20.00")
    invoice_pay_from_balance(invoice=invoice)
    open_invoice = _issue(customer, "99.00")
    payment = customer.payments.first()
    for url in [reverse("billing:balance"), reverse("billing:invoices"), reverse("billing:invoices") + "?status=paid&sort=total&q=VPS",
                reverse("billing:invoice_detail", args=[invoice.pk]), reverse("billing:invoice_detail", args=[open_invoice.pk]),
                reverse("billing:payments"), reverse("billing:payment_detail", args=[payment.pk]), reverse("billing:expenses"),
                reverse("billing:currency_change")]:
        response = client_in.get(url)
        assert response.status_code == 200, url
    assert b"\xe2\x82\xac30.00" in client_in.get(reverse("billing:balance")).content  # €30.00 left, top bar and card


@pytest.mark.django_db
def test_topbar_balance_costs_one_query(currencies, customer, fund, rf):
    from billing.selectors import topbar_balance

    fund(customer, "12.50")
    request = rf.get("/")
    request.user = customer.users.get()
    with CaptureQueriesContext(connection) as ctx:
        data = topbar_balance(request, customer)
    assert len(ctx) == 1 and data["text"] == "€12.50"


@pytest.mark.django_db
def test_pdf(currencies, client_in, customer):
    invoice = _issue(customer)
    response = client_in.get(reverse("billing:invoice_pdf", args=[invoice.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


@pytest.mark.django_db
def test_other_customers_objects_are_404(currencies, client_in, fund):
    other = UserFactory().customer
    invoice = _issue(other)
    payment = fund(other, "5.00")
    for name, arg in [("billing:invoice_detail", invoice.pk), ("billing:invoice_pdf", invoice.pk), ("billing:payment_detail", payment.pk)]:
        assert client_in.get(reverse(name, args=[arg])).status_code == 404
    for name in ["billing:invoice_pay_balance", "billing:invoice_apply_balance", "billing:invoice_topup_difference", "billing:invoice_cancel"]:
        assert client_in.post(reverse(name, args=[invoice.pk])).status_code == 404
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID


@pytest.mark.django_db
@pytest.mark.parametrize("amount,currency", [
    ("-10", "EUR"), ("0", "EUR"), ("0.00", "EUR"), ("50001", "EUR"), ("10.001", "EUR"), ("12.5", "JPY"), ("abc", "EUR"),
    ("1e3", "XXX"), ("10", "CHF"), ("10", "GBP"), ("", "EUR"), ("NaN", "EUR"), ("Infinity", "EUR"), ("0.5", "EUR"),
    ("1e3", "EUR"), ("2E2", "EUR"), ("1e-1", "EUR"),
])
def test_bad_topup_input_is_a_form_error_and_creates_no_invoice(currencies, client_in, amount, currency):
    Currency.objects.filter(code="GBP").update(enabled=False)
    response = client_in.post(reverse("billing:topup"), {"amount": amount, "currency": currency})
    assert response.status_code == 400
    assert response.context["form"].errors
    assert not Invoice.objects.exists()


@pytest.mark.django_db
def test_the_cached_top_up_fields_carry_a_new_request_key_written_as_django_writes_it(currencies, client_in):
    from billing.forms import TopUpForm

    keys = []
    for _ in range(2):
        html = client_in.get(reverse("billing:balance")).content.decode()
        key = re.search(r'<input type="hidden" name="request_key" value="([0-9a-f]{32})" id="id_request_key">', html).group(1)
        assert html.count('name="request_key"') == 1
        assert str(TopUpForm(currencies=[], initial={"request_key": key})["request_key"]) in html
        keys.append(key)
    assert keys[0] != keys[1]


@pytest.mark.django_db
def test_topup_in_another_currency_creates_advance_invoice(currencies, client_in, customer):
    response = client_in.post(reverse("billing:topup"), {"amount": "1 500", "currency": "JPY"})
    invoice = Invoice.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("billing:invoice_detail", args=[invoice.pk])
    assert (invoice.kind, invoice.currency, invoice.total, invoice.tax_amount) == (Invoice.Kind.ADVANCE, "JPY", Decimal("1500"), 0)


@pytest.mark.django_db
def test_topup_preview_partial(currencies, client_in):
    response = client_in.get(reverse("billing:topup_preview"), {"amount": "100", "currency": "USD"}, HTTP_HX_REQUEST="true")
    assert b"\xe2\x82\xac86.15" in response.content  # 100 USD -> €86.15
    assert b"RUB" in response.content or "8" in response.content.decode()
    bad = client_in.get(reverse("billing:topup_preview"), {"amount": "1.234", "currency": "USD"})
    assert b"topup-preview-error" in bad.content


@pytest.mark.django_db
def test_invoice_list_query_count_is_constant(currencies, client_in, customer, django_assert_num_queries):
    def count_queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client_in.get(reverse("billing:invoices") + "?status=all").status_code == 200
        return len(ctx)

    for _ in range(10):
        _issue(customer)
    small = count_queries()
    lines = []
    from billing.models import InvoiceLine

    invoices = [Invoice(number=f"2099-{n:06d}", year=2099, sequence=n, customer=customer, kind="order", currency="EUR",
                        subtotal=Decimal("1"), total=Decimal("1")) for n in range(1, 991)]
    Invoice.objects.bulk_create(invoices)
    for inv in invoices:
        lines.append(InvoiceLine(invoice=inv, description="x", quantity=1, unit_price=Decimal("1"), amount=Decimal("1")))
    InvoiceLine.objects.bulk_create(lines)
    assert Invoice.objects.count() == 1000
    assert count_queries() == small


@pytest.mark.django_db
def test_payment_refused_while_profile_incomplete(currencies, client):
    owner = UserFactory(last_name="")
    client.force_login(owner)
    payment_record(idempotency_key="f", customer=owner.customer, amount=Decimal("50.00"), currency="EUR", method="bank_transfer")
    invoice = _issue(owner.customer)
    page = client.get(reverse("billing:invoice_detail", args=[invoice.pk]))
    assert b"payment-blocked" in page.content and reverse("accounts:settings").encode() in page.content
    client.post(reverse("billing:invoice_pay_balance", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID


@pytest.mark.django_db
def test_technical_role_cannot_see_billing(currencies, client, customer):
    tech = UserFactory(customer=customer, role="technical")
    client.force_login(tech)
    assert client.get(reverse("billing:invoices")).status_code == 403


@pytest.mark.django_db
def test_balance_history_and_expenses_query_counts_are_constant(currencies, client_in, customer, fund):
    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client_in.get(url).status_code == 200
        return len(ctx)

    def spend(n):
        for _ in range(n):
            fund(customer, "3.00")
            invoice_pay_from_balance(invoice=_issue(customer, "2.00"))

    spend(2)
    small = (count(reverse("billing:balance")), count(reverse("billing:expenses")), count(reverse("billing:payments")))
    spend(25)
    assert (count(reverse("billing:balance")), count(reverse("billing:expenses")), count(reverse("billing:payments"))) == small


@pytest.mark.django_db
def test_movements_are_described_in_the_readers_language(currencies, client_in, customer, fund):
    fund(customer, "5.00")
    assert "Balance top-up (Bank transfer)" in client_in.get(reverse("billing:balance")).content.decode()
    customer.language = "ru"
    customer.save()
    assert "Пополнение баланса (Банковский перевод)" in client_in.get(reverse("billing:balance")).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "ru"])
def test_messages_with_values_print_as_blocktranslate_did(currencies, client_in, customer, owner, fund, language):
    """The Jinja2 bodies format the view's translated messages (`|safe|format`): the values are localized
    and escaped, the message is not (as `{% blocktranslate %}` printed them)."""
    from django.utils import translation

    from billing.services.currency import account_currency_change

    fund(customer, "30.00")
    open_invoice = _issue(customer, "99.00")
    account_currency_change(customer=customer, currency="JPY", expected_rate=Decimal("176.45"), actor=owner)
    customer.refresh_from_db()
    type(customer).objects.filter(pk=customer.pk).update(language=language)
    client_in.cookies["django_language"] = language
    balance = client_in.get(reverse("billing:balance")).content.decode()
    detail = client_in.get(reverse("billing:invoice_detail", args=[open_invoice.pk])).content.decode()
    with translation.override(language):
        rate = translation.gettext("Rate: 1 %(a)s = %(r)s %(b)s") % {"a": "EUR", "r": "176,45" if language == "ru" else "176.45", "b": "JPY"}
        title = translation.gettext("Invoice %(n)s") % {"n": open_invoice.number}
        currency = translation.gettext("In the account currency (%(code)s)") % {"code": "JPY"}
    assert rate in balance and currency in balance
    assert f"<h1>{title} " in detail


@pytest.mark.django_db
def test_an_invoice_id_beyond_bigint_is_not_found(currencies, client_in):
    assert client_in.get(reverse("billing:invoice_detail", args=[10 ** 20])).status_code == 404


@pytest.mark.django_db
def test_payments_page_without_payments_reads_no_rows(currencies, client_in):
    with CaptureQueriesContext(connection) as queries:
        page = client_in.get(reverse("billing:payments"))
    assert "No payments yet." in page.content.decode()
    assert not any('FROM "billing_payment" LEFT OUTER JOIN' in query["sql"] for query in queries)  # counted 0: no page read


@pytest.mark.django_db
def test_invoice_rows_read_what_invoice_list_reads_for_every_filter_sort_and_page(currencies, customer, fund):
    from django.utils import timezone

    from billing import selectors

    fund(customer, "30.00")
    invoices = [_issue(customer, price) for price in ("20.00", "5.00", "20.00", "7.50", "1.00")]
    invoice_pay_from_balance(invoice=invoices[0])
    Invoice.objects.filter(pk=invoices[1].pk).update(status=Invoice.Status.IN_PROGRESS)
    Invoice.objects.filter(pk=invoices[3].pk).update(status=Invoice.Status.CANCELLED)
    Invoice.objects.filter(pk__in=[invoices[2].pk, invoices[4].pk]).update(issued_at=timezone.now())  # a tie: pk decides
    _issue(UserFactory().customer, "3.00")  # another customer's: never read
    for status in [*selectors.INVOICE_FILTERS, "bogus"]:
        for sort in [*selectors.INVOICE_SORTS, "bogus"]:
            expected = list(selectors.invoice_list(customer=customer, status=status, sort=sort).values(*selectors.INVOICE_ROW_FIELDS))
            rows, count = selectors.invoice_rows(customer=customer, status=status, sort=sort)
            assert count == len(expected), (status, sort)
            assert rows[0:2] + rows[2:10] == expected and rows[1:3] == expected[1:3], (status, sort)
    assert [row["pk"] for row in selectors.invoice_rows(customer=customer, status="all", sort="-date")[0][0:10]] == [
        invoices[4].pk, invoices[2].pk, invoices[3].pk, invoices[1].pk, invoices[0].pk]


@pytest.mark.django_db
def test_invoice_rows_print_the_same_with_and_without_a_search(currencies, client_in, customer):
    invoice = _issue(customer, "12.50", kind=Invoice.Kind.RENEWAL)
    row = re.compile(rf'<tr data-testid="invoice-row-{invoice.number}">.*?</tr>', re.S)
    plain = row.search(client_in.get(reverse("billing:invoices")).content.decode()).group()
    searched = row.search(client_in.get(reverse("billing:invoices"), {"q": invoice.number}).content.decode()).group()
    assert plain == searched
    assert "Renewal" in plain and plain.count("€12.50") == 2 and 'data-testid="invoice-status">Unpaid<' in plain  # total and due
