import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from billing.gateways import services
from billing.gateways.models import PaymentAttempt
from billing.models import Invoice


@pytest.fixture
def linked_invoice(gateways_on, customer, make_invoice):
    customer.pay_without_login = True
    customer.save()
    return make_invoice(customer, "12.00")


def link(invoice) -> str:
    return services.pay_link_url(invoice=invoice).removeprefix("http://127.0.0.1:9")


@pytest.mark.django_db
def test_link_shows_only_that_invoice_and_pays_it_without_login(client, linked_invoice):
    page = client.get(link(linked_invoice))

    assert page.status_code == 200
    html = page.content.decode()
    assert linked_invoice.number in html and "data-testid=\"pay-form\"" in html
    assert linked_invoice.payer_address not in html  # nothing else about the account
    response = client.post(link(linked_invoice), {"gateway": "sandbox"})
    assert response.status_code == 302 and "/pay/sandbox-provider/checkout/" in response["Location"]
    attempt = PaymentAttempt.objects.get()
    assert attempt.via_pay_link and attempt.invoice == linked_invoice and not attempt.save_method


@pytest.mark.django_db
def test_link_is_404_for_any_other_invoice_id(client, linked_invoice, make_invoice, customer):
    other = make_invoice(customer, "5.00")
    token = services.pay_link_token(invoice=linked_invoice)

    assert client.get(reverse("gateways:pay_link", kwargs={"invoice_id": other.pk, "token": token})).status_code == 404
    assert client.get(reverse("gateways:pay_link", kwargs={"invoice_id": 999999, "token": token})).status_code == 404
    assert client.post(reverse("gateways:pay_link", kwargs={"invoice_id": other.pk, "token": token}), {"gateway": "sandbox"}).status_code == 404
    assert not PaymentAttempt.objects.exists()


@pytest.mark.django_db
def test_tampered_and_expired_links_are_rejected(client, linked_invoice, settings):
    url = link(linked_invoice)
    assert client.get(url[:-3] + ("abc" if not url.endswith("abc/") else "xyz") + "/").status_code == 404
    assert client.get(url.replace("/link/", "/link/").rstrip("/") + "x/").status_code == 404
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.PAY_LINK_MAX_AGE + 60)):
        expired = client.get(url)
    assert expired.status_code == 410 and b'data-reason="expired"' in expired.content


@pytest.mark.django_db
def test_link_is_useless_after_payment(client, linked_invoice, fund):
    url = link(linked_invoice)
    from billing.services.payments import payment_record

    payment_record(idempotency_key="paid-it", customer=linked_invoice.customer, amount=linked_invoice.total,
                   currency=linked_invoice.currency, method="bank_transfer", invoice=linked_invoice)
    assert Invoice.objects.get(pk=linked_invoice.pk).status == Invoice.Status.PAID

    assert client.get(url).status_code == 410
    assert client.post(url, {"gateway": "sandbox"}).status_code == 410
    assert not PaymentAttempt.objects.exists()
    assert services.pay_link_url(invoice=Invoice.objects.get(pk=linked_invoice.pk)) == ""


@pytest.mark.django_db
def test_link_stops_working_when_the_setting_is_turned_off(client, linked_invoice):
    url = link(linked_invoice)
    customer = linked_invoice.customer
    customer.pay_without_login = False
    customer.save()

    response = client.get(url)
    assert response.status_code == 410 and b'data-reason="disabled"' in response.content
    assert client.post(url, {"gateway": "sandbox"}).status_code == 410
    assert services.pay_link_url(invoice=linked_invoice) == ""
    assert not PaymentAttempt.objects.exists()
