"""A Russian pass over every customer page of the seeded demo customer: each page answers 200, is
screenshotted (test-artifacts/portal-ru-*.png, reviewed by a person) and shows no English UI words.

Text the customer or staff typed (ticket messages, product descriptions, invoice lines, notices
rendered when the demo was seeded) is data, not UI: it is removed before the check.
"""
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

from accounts.models import Customer, PolicyVersion, User
from billing.models import Invoice, InvoiceLine, LedgerTransaction, Payer, Payment
from notifications.models import Notification
from orders.models import Location, OsImage, Order, Plan, ProductType
from tickets.models import Message, Ticket

from .english import english_leftovers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("departments")]

DATA_FIELDS = [
    (Ticket, ["subject"]), (Message, ["body"]), (ProductType, ["name", "description"]), (Plan, ["name"]),
    (OsImage, ["name"]), (Location, ["name"]), (InvoiceLine, ["description"]), (LedgerTransaction, ["memo"]),
    (Invoice, ["payer_name", "payer_company", "payer_address"]), (Notification, ["subject", "body_text"]),
    (Customer, ["company_name", "street", "city"]), (User, ["first_name", "last_name", "username", "email"]),
    (PolicyVersion, ["title", "text", "changes"]), (Payer, ["name"]), (Order, ["options"]),
]


# The page's text including visually-hidden parts (chart tables, labels), without the time-zone list
# (IANA names such as "America/Port_of_Spain" are identifiers, not UI).
VISIBLE_AND_HIDDEN_TEXT = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll('script, style, select[name=time_zone] option').forEach((node) => node.remove());
  return copy.textContent.replace(/\\s+/g, ' ');
}"""


def data_strings() -> list[str]:
    values = set()
    for model, fields in DATA_FIELDS:
        names = [f for f in fields if any(field.name == f for field in model._meta.get_fields())]
        for row in model.objects.values_list(*names):
            for value in row:
                if isinstance(value, dict):
                    values.update(str(v) for v in value.values())
                elif value:
                    values.update(line.strip() for line in str(value).splitlines())
    return sorted((v for v in values if len(v) > 1), key=len, reverse=True)


def customer_pages(customer: Customer) -> dict[str, str]:
    order = Order.objects.filter(customer=customer).order_by("pk").first()
    invoice = Invoice.objects.filter(customer=customer, status=Invoice.Status.UNPAID).order_by("pk").first() \
        or Invoice.objects.filter(customer=customer).order_by("pk").first()
    payment = Payment.objects.filter(customer=customer).order_by("pk").first()
    ticket = Ticket.objects.filter(customer=customer).order_by("pk").first()
    notification = Notification.objects.filter(customer=customer).order_by("pk").first()
    plan = Plan.objects.filter(is_active=True).order_by("pk").first() if hasattr(Plan, "is_active") else Plan.objects.first()
    wanted = {
        "dashboard": ("dashboard", []),
        "orders": ("orders:order_list", []), "order-detail": ("orders:order_detail", [order.pk]),
        "order-catalogue": ("orders:catalogue", []), "order-new": ("orders:order_new", [plan.pk]),
        "order-renew": ("orders:order_renew", [order.pk]), "order-change-plan": ("orders:order_change_plan", [order.pk]),
        "order-addons": ("orders:order_addons", [order.pk]),
        "invoices": ("billing:invoices", []), "invoice-detail": ("billing:invoice_detail", [invoice.pk]),
        "balance": ("billing:balance", []), "currency-change": ("billing:currency_change", []),
        "payments": ("billing:payments", []), "payment-detail": ("billing:payment_detail", [payment.pk]),
        "expenses": ("billing:expenses", []), "payers": ("billing:payers", []), "payer-new": ("billing:payer_create", []),
        "documents": ("billing:documents", []),
        "pay-invoice": ("gateways:pay_invoice", [invoice.pk]), "payment-methods": ("gateways:methods", []),
        "autopay": ("gateways:autopay", []),
        "tickets": ("tickets:list", []), "ticket-detail": ("tickets:detail", [ticket.pk]), "ticket-new": ("tickets:create", []),
        "notifications": ("notifications:inbox", []), "notification-detail": ("notifications:detail", [notification.pk]),
        "subscriptions": ("notifications:subscriptions", []),
        "settings-profile": ("accounts:settings_profile", []), "settings-preferences": ("accounts:settings_preferences", []),
        "settings-email": ("accounts:settings_email", []), "settings-security": ("accounts:settings_security", []),
        "settings-activity": ("accounts:activity", []), "settings-users": ("accounts:trusted_users", []),
        "settings-privacy": ("accounts:settings_privacy", []), "password-change": ("accounts:password_change", []),
    }
    pages = {}
    for name, (url_name, args) in wanted.items():
        try:
            pages[name] = reverse(url_name, args=args)
        except NoReverseMatch:  # a section another app has not shipped (yet)
            continue
    return pages


def test_every_customer_page_in_russian(page, login, screenshot):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    owner = User.objects.get(username="demo")
    Customer.objects.filter(pk=owner.customer_id).update(language="ru")
    owner.set_password("Demo-Russian-Pass-1")
    owner.save(update_fields=["password"])
    pages = customer_pages(owner.customer)
    assert len(pages) >= 30
    data = data_strings()

    login("demo", "Demo-Russian-Pass-1")
    problems = {}
    for name, url in pages.items():
        response = page.goto(url)
        page.wait_for_load_state("networkidle")
        assert response is not None and response.status == 200, f"{name} {url}: {response and response.status}"
        assert page.locator("html").get_attribute("lang") == "ru", name
        screenshot(f"portal-ru-{name}")
        leftovers = english_leftovers(page.evaluate(VISIBLE_AND_HIDDEN_TEXT), data)
        if leftovers:
            problems[f"{name} ({url})"] = leftovers
    back_office_pass(page, screenshot, owner.customer)
    assert not problems, "English left on Russian pages:\n" + "\n".join(f"  {k}: {v}" for k, v in problems.items())


def back_office_pass(page, screenshot, customer):
    """Staff pages (Django's admin is translated by Django; ours is marked too): customer page and reports."""
    page.context.clear_cookies()  # sign the customer out
    admin_user = User.objects.get(username="admin")
    admin_user.set_password("Admin-Russian-Pass-1")
    admin_user.save(update_fields=["password"])
    host = urlsplit(page.url).hostname
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "ru", "domain": host, "path": "/"}])
    page.goto("/admin/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "Admin-Russian-Pass-1")
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.tests.test_security import current_code

    device = TOTPDevice.objects.get(user=admin_user, confirmed=True)  # the demo staff user's authenticator
    page.fill("input[name=otp_token]", current_code(device))
    page.click("[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(reverse("admin:accounts_customer_change", args=[customer.pk]))
    assert "Бэк-офис" in page.inner_text("#content")
    screenshot("portal-ru-admin-customer")
    page.goto(reverse("admin:portal_staffreport_changelist"))
    text = page.inner_text("#content")
    assert "Выручка по месяцам" in text and "Неоплаченные счета" in text
    screenshot("portal-ru-admin-reports")
