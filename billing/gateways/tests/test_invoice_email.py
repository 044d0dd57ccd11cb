"""The "invoice issued" email carries the signed pay-without-login link when the customer enabled it
(gateways add it through billing.hooks.register_invoice_email_context; billing never imports gateways)."""
import re

import pytest
from django.utils import translation

from notifications.models import EmailOutbox
from notifications.services import email_content

BASE_URL = "http://127.0.0.1:9"  # PORTAL_BASE_URL in these tests (conftest)


def _issued_email(invoice) -> tuple[str, str]:
    """(text, HTML) of the "invoice issued" email as it is sent."""
    _subject, text, html = email_content(EmailOutbox.objects.get(subject__contains=invoice.number))
    return text, html


@pytest.mark.django_db
def test_invoice_email_carries_a_working_pay_link_when_the_setting_is_on(client, gateways_on, customer, make_invoice):
    customer.pay_without_login = True
    customer.save()

    invoice = make_invoice(customer, "17.50")

    text, html = _issued_email(invoice)
    links = re.findall(re.escape(BASE_URL) + r"/pay/\S+", text)
    (pay_link,) = [link for link in links if "/link/" in link]
    assert f'href="{pay_link}"' in html
    page = client.get(pay_link.removeprefix(BASE_URL))  # not logged in
    html = page.content.decode()
    assert page.status_code == 200 and invoice.number in html and "17.50" in html
    assert 'data-testid="pay-form"' in html


@pytest.mark.django_db
def test_invoice_email_has_no_pay_link_when_the_setting_is_off(gateways_on, customer, make_invoice):
    assert not customer.pay_without_login
    invoice = make_invoice(customer, "17.50")

    text, html = _issued_email(invoice)
    assert "/pay/" not in text and "/pay/" not in html


@pytest.mark.django_db
def test_pay_link_line_is_translated(gateways_on, customer, make_invoice):
    customer.pay_without_login = True
    customer.language = "ru"
    customer.save()
    invoice = make_invoice(customer, "17.50")
    with translation.override("en"):
        assert "Оплатить без входа в личный кабинет: " + BASE_URL in _issued_email(invoice)[0]
