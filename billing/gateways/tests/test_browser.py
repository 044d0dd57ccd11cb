"""Top up → invoice → sandbox hosted page → back on the portal, with the sandbox's webhook really
POSTed over HTTP to the live server."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.gateways import sandbox_provider
from billing.gateways.models import PaymentAttempt, SavedPaymentMethod, WebhookDelivery
from billing.models import Payment
from billing.tests.factories import make_currencies

from .factories import GatewayConfigFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(live_server, settings, login):
    settings.PORTAL_BASE_URL = live_server.url
    make_currencies()
    GatewayConfigFactory(code="sandbox")
    user = UserFactory()
    login(user.username, DEFAULT_PASSWORD)
    return user


def top_up_and_open_sandbox(page, amount: str, *, save_card=False, screenshot=None):
    page.goto("/billing/")
    page.fill("#id_amount", amount)
    page.select_option("#id_currency", "EUR")
    page.click("[data-testid=topup-submit]")
    expect(page.locator("[data-testid=gateway-panel]")).to_be_visible()
    if screenshot:
        screenshot("gateways-invoice-panel")
    if save_card:
        page.check("#panel-save-method")
    page.click("[data-testid=pay-by-method]")
    expect(page.locator("[data-testid=sandbox-form]")).to_be_visible()


def pay_with(page, number: str):
    page.fill("#card-number", number)
    page.fill("#card-expiry", "12/30")
    page.fill("#card-cvc", "123")
    page.click("[data-testid=sandbox-pay]")


def test_sandbox_success_credits_the_balance(page, portal, screenshot):
    top_up_and_open_sandbox(page, "25", save_card=True)
    expect(page.locator("[data-testid=sandbox-amount]")).to_contain_text("25.00")
    screenshot("gateways-sandbox-checkout")

    pay_with(page, "4242 4242 4242 4242")

    expect(page.locator("[data-testid=attempt-status][data-status=succeeded]")).to_be_visible()
    expect(page.locator("[data-testid=topbar-balance]")).to_contain_text("25.00")
    screenshot("gateways-payment-succeeded")
    assert Payment.objects.get().amount == 25
    assert WebhookDelivery.objects.filter(result="processed").count() == 1  # it came over HTTP
    assert SavedPaymentMethod.objects.get(customer=portal.customer).last4 == "4242"
    page.goto("/pay/methods/")
    expect(page.locator("[data-testid=method-row]")).to_have_count(1)
    screenshot("gateways-payment-methods")


def test_sandbox_decline_then_cancel_leaves_the_balance_untouched(page, portal, screenshot):
    top_up_and_open_sandbox(page, "15", screenshot=screenshot)

    pay_with(page, "4000 0000 0000 0002")

    expect(page.locator("[data-testid=sandbox-error]")).to_contain_text("declined")
    screenshot("gateways-sandbox-declined")
    page.click("[data-testid=sandbox-cancel]")
    expect(page.locator("[data-testid=attempt-status][data-status=cancelled]")).to_be_visible()
    expect(page.locator("[data-testid=topbar-balance]")).to_contain_text("0.00")
    assert not Payment.objects.exists()
    assert PaymentAttempt.objects.get().status == "cancelled"


def test_sandbox_pending_then_success(page, portal, screenshot, settings):
    top_up_and_open_sandbox(page, "40")

    pay_with(page, "4000 0000 0000 0077")

    expect(page.locator("[data-testid=attempt-status][data-status=pending]")).to_be_visible()
    screenshot("gateways-payment-pending")
    assert not Payment.objects.exists()
    # What the beat sweeper does once the provider settles the charge: the event goes over HTTP.
    due = timezone.now() + timedelta(seconds=settings.SANDBOX_PENDING_DELAY + 1)
    assert sandbox_provider.webhooks_deliver_due(now=due) == 1

    expect(page.locator("[data-testid=attempt-status][data-status=succeeded]")).to_be_visible()  # htmx polling
    page.reload()
    expect(page.locator("[data-testid=topbar-balance]")).to_contain_text("40.00")
    assert Payment.objects.get().amount == 40


def test_pay_page_with_bank_transfer_and_autopay_setup(page, portal, screenshot, settings):
    from decimal import Decimal

    from billing.services.invoices import LineInput, invoice_issue

    from .factories import GatewayConfigFactory as Config, SavedPaymentMethodFactory

    settings.BILLING_BANK_ACCOUNT = {"beneficiary": "HostPortal GmbH", "bank_name": "Commerzbank", "iban": "DE89370400440532013000",
                                      "bic": "COBADEFFXXX", "address": "Kaiserplatz, Frankfurt am Main"}
    Config(code="bank_transfer", position=5)
    invoice = invoice_issue(customer=portal.customer, kind="order",
                            lines=[LineInput(description="VPS Start, 1 month", quantity=1, unit_price=Decimal("9.90"))])
    page.goto(f"/pay/invoices/{invoice.pk}/")
    expect(page.locator("[data-testid=bank-reference]")).to_have_text(invoice.number)
    screenshot("gateways-pay-page")

    SavedPaymentMethodFactory(customer=portal.customer, is_default=True)
    page.goto("/pay/autopay/")
    page.check("#id_enabled")
    page.fill("#id_monthly_limit", "100")
    page.click("[data-testid=autopay-form] button")
    expect(page.locator(".alert-success")).to_be_visible()
    screenshot("gateways-card-auto-top-up")


def test_pay_an_invoice_with_the_saved_card_without_leaving_the_portal(page, portal, screenshot):
    from billing.gateways.models import SandboxCard
    from billing.services.invoices import LineInput, invoice_issue

    from .factories import SavedPaymentMethodFactory

    customer = portal.customer
    SandboxCard.objects.create(id="card_browser", customer_ref=str(customer.pk), brand="visa", last4="4242", exp_month=12,
                               exp_year=2031, behaviour="succeed")
    SavedPaymentMethodFactory(customer=customer, token="card_browser", is_default=True)
    invoice = invoice_issue(customer=customer, kind="order", lines=[LineInput(description="VPS Start", quantity=1,
                                                                              unit_price=Decimal("12.00"))])
    page.goto(f"/pay/invoices/{invoice.pk}/")
    expect(page.locator("[data-testid=pay-saved-form]")).to_contain_text("•••• 4242")
    screenshot("gateways-pay-with-saved-card")
    page.click("[data-testid=pay-saved-button]")
    expect(page.locator("[data-testid=invoice-closed]")).to_contain_text("paid")
    invoice.refresh_from_db()
    assert invoice.status == "paid" and Payment.objects.get(invoice=invoice).gateway == "sandbox"
