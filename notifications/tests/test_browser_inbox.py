import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from notifications import services
from notifications.kinds import Kind

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_inbox_unread_badge_open_and_mark_all_read(page, login, screenshot):
    owner = UserFactory()
    customer = owner.customer
    read = services.notify(customer=customer, kind=Kind.SECURITY_LOGIN,
                           context={"ip": "203.0.113.7", "when": "2026-11-20 09:14 UTC", "user_agent": "Firefox"})
    services.notification_mark_read(customer=customer, user=owner, notification_id=read.pk)
    services.notify(customer=customer, kind=Kind.SERVICE_RENEWED,
                    context={"service": "VPS-2 (vps-2.example.net)", "expires_at": "2026-12-21", "amount": "€15.00"})
    services.notify(customer=customer, kind=Kind.LOW_BALANCE, context={"balance": "€3.20", "threshold": "€10.00"},
                    link="/billing/")
    services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, link="/billing/",
                    context={"invoice_number": "INV-2026-0107", "amount": "€24.00", "due_date": "2026-11-28"})

    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/notifications/")
    badge = page.get_by_test_id("unread-badge")
    expect(badge).to_have_text(re.compile(r"^\s*3\b"))
    rows = page.get_by_test_id("notification-row")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("Invoice INV-2026-0107 issued")  # newest first
    weights = [rows.nth(i).evaluate("row => getComputedStyle(row).fontWeight") for i in range(4)]
    assert weights == ["700", "700", "700", "400"]
    screenshot("notifications-inbox")

    rows.first.get_by_role("link").click()
    expect(page.get_by_test_id("notification-subject")).to_have_text("Invoice INV-2026-0107 issued: €24.00")
    expect(page.get_by_test_id("read-at")).to_be_visible()  # htmx POSTed "read" on load
    expect(badge).to_have_text(re.compile(r"^\s*2\b"))
    screenshot("notifications-detail")

    page.get_by_role("link", name="Back to notifications").click()
    expect(rows.first).to_have_class(re.compile("notification-read"))
    page.get_by_test_id("mark-all-read").click()
    expect(page.get_by_role("alert")).to_contain_text("All notifications are marked as read.")
    expect(badge).to_have_text("")
    expect(page.locator(".notification-unread")).to_have_count(0)
    expect(page.get_by_test_id("mark-all-read")).to_be_disabled()
    screenshot("notifications-inbox-all-read")


def test_subscriptions_page(page, login, screenshot):
    owner = UserFactory()
    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/notifications/subscriptions/")
    expect(page.locator("#id_invoice_issued")).to_be_disabled()
    page.locator("#id_payment_received").uncheck()
    page.locator("#id_newsletter").check()
    page.get_by_test_id("save-subscriptions").click()
    expect(page.get_by_role("alert")).to_contain_text("Your email subscriptions are saved.")
    expect(page.locator("#id_payment_received")).not_to_be_checked()
    expect(page.locator("#id_newsletter")).to_be_checked()
    screenshot("notifications-subscriptions")

    page.get_by_test_id("lang-ru").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Подписки на email")
    screenshot("notifications-subscriptions-ru")
