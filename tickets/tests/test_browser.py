"""End to end in Chromium: open a ticket with an attachment, staff reply in the admin, unread marker,
customer reply and close; and proof that HTML in tickets never runs."""
from pathlib import Path

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory
from tickets.models import Attachment, Message, Ticket
from tickets.tests.factories import PNG_BYTES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def test_ticket_round_trip_with_staff_reply_in_admin(page, login, screenshot, browser, live_server):
    owner = UserFactory(username="ticketuser", first_name="Tess", last_name="Client")
    staff = StaffUserFactory(username="agent", first_name="Maria")
    login("ticketuser", DEFAULT_PASSWORD)

    page.click("[data-testid=nav-tickets]")
    page.wait_for_selector("[data-testid=tickets-empty]")
    screenshot("tickets-empty")
    page.click("[data-testid=new-ticket]")
    page.select_option("select[name=department]", label="Technical support")
    page.fill("input[name=subject]", "Server unreachable after reboot")
    page.select_option("select[name=priority]", "high")
    page.fill("textarea[name=body]", "My VPS does not answer pings since the reboot.\nConsole screenshot attached.")
    page.set_input_files("input[name=attachments]", files=[
        {"name": "console.png", "mimeType": "image/png", "buffer": PNG_BYTES},
    ])
    screenshot("tickets-create")
    page.click("[data-testid=submit-ticket]")
    page.wait_for_selector("[data-testid=thread]")
    ticket = Ticket.objects.get(customer=owner.customer)
    assert page.inner_text("[data-testid=attachment-link]").endswith("console.png")
    assert Attachment.objects.get().original_name == "console.png"

    # Staff answer in the admin, in their own browser session.
    staff_context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    admin = staff_context.new_page()
    admin.goto("/admin/login/")
    admin.fill("input[name=username]", staff.username)
    admin.fill("input[name=password]", DEFAULT_PASSWORD)
    admin.click("input[type=submit]")
    admin.goto("/admin/tickets/ticket/")
    admin.click(f"text=#{ticket.number}")
    admin.fill("#staff-reply-form textarea[name=body]", "We restarted the network service.\nPlease check again.")
    admin.click("#staff-reply-form input[type=submit]")
    admin.wait_for_selector("text=the customer has been notified")
    admin.screenshot(path=str(ARTIFACTS / "tickets-admin-ticket.png"), full_page=True)
    staff_context.close()

    page.goto("/tickets/")
    page.wait_for_selector(f"[data-testid=ticket-row-{ticket.pk}] [data-testid=unread-marker]")
    assert page.inner_text("[data-testid=nav-tickets-unread]") == "1"
    assert "Maria (support)" in page.inner_text(f"[data-testid=ticket-row-{ticket.pk}]")
    screenshot("tickets-list-unread")

    page.click(f"[data-testid=ticket-row-{ticket.pk}] a >> nth=1")
    page.wait_for_selector("[data-author=staff]")
    assert "Please check again." in page.inner_text("[data-author=staff]")
    page.wait_for_load_state("networkidle")  # the htmx "seen" call
    ticket.refresh_from_db()
    assert ticket.customer_unread is False

    page.fill("textarea[name=body]", "It works now, thank you!")
    page.click("[data-testid=send-reply]")
    page.wait_for_selector("text=Your reply has been sent.")
    assert page.locator("[data-testid=message]").count() == 3
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CUSTOMER_REPLIED
    screenshot("tickets-thread")

    page.click("[data-testid=close-ticket]")
    page.wait_for_selector("[data-testid=reopen-ticket]")
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED
    assert page.inner_text("[data-testid=ticket-status]") == "Closed"
    screenshot("tickets-closed")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("tickets-closed-phone")
    assert Message.objects.filter(ticket=ticket).count() == 3


def test_html_in_tickets_never_runs(page, login, screenshot):
    owner = UserFactory(username="xssuser")
    login("xssuser", DEFAULT_PASSWORD)
    page.goto("/tickets/new/")
    page.fill("input[name=subject]", XSS)
    page.fill("textarea[name=body]", f"{XSS}\n<b>bold?</b> see https://example.com/docs")
    page.click("[data-testid=submit-ticket]")
    page.wait_for_selector("[data-testid=thread]")
    assert page.evaluate("window.__pwned") is None
    assert page.inner_text("[data-testid=ticket-subject]") == XSS
    assert "<b>bold?</b>" in page.inner_text("[data-testid=message-body]")
    assert page.locator("[data-testid=message-body] a[href='https://example.com/docs']").count() == 1
    screenshot("tickets-xss-thread")
    page.goto("/tickets/")
    assert page.evaluate("window.__pwned") is None
    assert Ticket.objects.get(customer=owner.customer).subject == XSS
