"""The top bar's per-user cache (core.topbar): hits save the layout's queries, and every write that
changes a value the top bar shows makes the next page show the new value."""
import re
import threading
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import policies as account_services
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.services import invoices, payments
from billing.tests.factories import make_currencies
from notifications import services as notification_services
from notifications.models import Notification
from tickets import services as ticket_services
from tickets.tests.factories import TicketFactory

pytestmark = pytest.mark.django_db

CACHED = override_settings(TOPBAR_CACHE_SECONDS=300)
PAGE = "/accounts/settings/email-routing/"  # a page that shows the layout and reads nothing else of the top bar's


@pytest.fixture(autouse=True)
def _cache_on():
    cache.clear()
    with CACHED:
        yield
    cache.clear()


@pytest.fixture
def owner(db):
    make_currencies()
    return UserFactory()


@pytest.fixture
def browser(client, owner):
    client.force_login(owner)
    return client


def _topbar(client) -> dict:
    html = client.get(PAGE).content.decode()
    balance = re.search(r'data-testid="topbar-balance"[^>]*>([^<]+)<', html)
    unread = re.search(r'data-testid="unread-badge"><span[^>]*>(\d+)', html)
    tickets = re.search(r'data-testid="nav-tickets-unread">(\d+)<', html)
    return {"balance": balance.group(1) if balance else None, "unread": int(unread.group(1)) if unread else 0,
            "tickets": int(tickets.group(1)) if tickets else 0, "banner": 'data-testid="policy-banner"' in html}


def _fund(customer, amount: str, key: str):
    return payments.payment_record(idempotency_key=key, customer=customer, amount=Decimal(amount), currency="EUR",
                                           method="bank_transfer")


def _queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(PAGE).status_code == 200
    return len(queries)


def test_a_cached_top_bar_costs_no_queries(browser, owner):
    with override_settings(TOPBAR_CACHE_SECONDS=0):
        uncached = _queries(browser)
    browser.get(PAGE)  # creates the version tokens
    first = _queries(browser)  # computes and stores
    assert first == uncached
    assert _queries(browser) == uncached - 4  # balance, unread notifications, unread tickets, pending policies


def test_balance_changes_show_at_once(browser, owner):
    _topbar(browser), _topbar(browser)
    assert _topbar(browser)["balance"] == "€0.00"
    _fund(owner.customer, "12.50", "t1")
    assert _topbar(browser)["balance"] == "€12.50"
    invoice = invoices.invoice_issue(customer=owner.customer, kind="order",
                                             lines=[invoices.LineInput(description="VPS", quantity=1, unit_price=Decimal("2.50"))])
    invoices.invoice_pay_from_balance(invoice=invoice)
    assert _topbar(browser)["balance"] == "€10.00"


def test_notifications_counted_and_read(browser, owner):
    customer = owner.customer
    _topbar(browser), _topbar(browser)
    notification_services.notify(customer=customer, kind="low_balance", context={"balance": "1 EUR", "threshold": "5 EUR"})
    notification_services.notify(customer=customer, kind="low_balance", context={"balance": "1 EUR", "threshold": "5 EUR"},
                                 dedupe_key="second")
    assert _topbar(browser)["unread"] == 2
    first = Notification.objects.filter(customer=customer).order_by("pk").first()
    notification_services.notification_mark_read(customer=customer, user=owner, notification_id=first.pk)
    assert _topbar(browser)["unread"] == 1
    notification_services.notification_mark_all_read(customer=customer, user=owner)
    assert _topbar(browser)["unread"] == 0


def test_notifications_sent_in_bulk_are_counted(browser, owner):
    from notifications.bulk import Notice, notify_many

    _topbar(browser), _topbar(browser)
    notify_many(kind="low_balance", notices=[Notice(customer=owner.customer, dedupe_key="bulk-1",
                                                    context={"balance": "1 EUR", "threshold": "5 EUR"})])
    assert _topbar(browser)["unread"] == 1


def test_staff_reply_and_reading_it_move_the_tickets_badge(browser, owner):
    ticket = TicketFactory(created_by=owner)
    _topbar(browser), _topbar(browser)
    ticket_services.message_post_staff(ticket=ticket, staff_user=StaffUserFactory(), body="Done.")
    assert _topbar(browser)["tickets"] == 1
    assert browser.post(reverse("tickets:seen", args=[ticket.pk])).status_code == 204  # the thread page, once read
    assert _topbar(browser)["tickets"] == 0


def test_policy_published_then_accepted(browser, owner):
    staff = StaffUserFactory()
    _topbar(browser), _topbar(browser)
    assert not _topbar(browser)["banner"]
    policy = account_services.policy_version_create(kind="privacy", title="Privacy v9", text="Text.", staff=staff)
    account_services.policy_publish(policy=policy, staff=staff)
    assert _topbar(browser)["banner"]
    account_services.policies_accept(user=owner, policy_ids=[policy.pk])
    assert not _topbar(browser)["banner"]


def test_role_language_and_other_users_have_their_own_entries(client, owner):
    finance = UserFactory(customer=owner.customer, role="finance")
    ticket = TicketFactory(created_by=owner, customer_unread=True)
    client.force_login(owner)
    _topbar(client), _topbar(client)
    assert _topbar(client)["tickets"] == 1
    client.force_login(finance)  # finance sees no tickets
    assert _topbar(client)["tickets"] == 0 and _topbar(client)["balance"] == "€0.00"
    owner.customer.language = "ru"
    owner.customer.save()
    client.force_login(owner)
    assert _topbar(client)["balance"] == "0,00\xa0€"
    assert ticket.customer_unread


@pytest.mark.django_db(transaction=True)
def test_a_page_read_before_a_payment_commits_is_not_kept_after_it():
    """A page renders while a payment is posted but not committed: it shows (and caches) the old balance
    under the token the posting set; the token set after COMMIT makes the next page read the new one."""
    make_currencies()
    owner = UserFactory()
    from django.test import Client

    client = Client()
    client.force_login(owner)
    _topbar(client), _topbar(client)
    posted, release, done = threading.Event(), threading.Event(), threading.Event()

    def pay():
        try:
            with transaction.atomic():
                _fund(owner.customer, "7.00", "racing")
                posted.set()
                release.wait(10)
        finally:
            connection.close()
            done.set()

    worker = threading.Thread(target=pay)
    worker.start()
    assert posted.wait(10)
    assert _topbar(client)["balance"] == "€0.00"  # not committed yet: the old balance, cached now
    release.set()
    assert done.wait(10)
    worker.join()
    assert _topbar(client)["balance"] == "€7.00"


def test_without_the_cache_every_page_computes_the_top_bar(browser, owner):
    cache.set("topbar:v:all", "x")
    cache.delete(f"topbar:v:{owner.customer.pk}")  # a token missing (evicted): computed, not stored under it
    assert _topbar(browser)["balance"] == "€0.00"
    _fund(owner.customer, "3.00", "t3")
    assert _topbar(browser)["balance"] == "€3.00"



def test_the_dashboards_spending_chart_is_kept_until_a_payment_moves_the_balance(owner):
    """The chart sums paid (and later refunded) service invoices: only paying one changes it, and paying
    moves the balance, which replaces the customer's tokens. It is kept as HTML, per language."""
    from django.utils import timezone, translation

    from billing.models import Invoice
    from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
    from portal.views import spending_charts

    customer = owner.customer

    def spending():
        with CaptureQueriesContext(connection) as queries:
            html = spending_charts(customer, timezone.now())
        reads = sum("DATE_TRUNC" in q["sql"] and "billing_invoice" in q["sql"] for q in queries)
        amounts = re.findall(r"<td>€([0-9.,]+)</td>", html[0])  # the data table: one amount per month
        assert len(amounts) == 12
        return reads, sum(Decimal(amount.replace(",", "")) for amount in amounts)

    assert spending() == (1, Decimal("0"))  # tokens created
    assert spending() == (1, Decimal("0"))  # computed under them and stored
    assert spending() == (0, Decimal("0"))  # from the cache
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("20.00"))])
    assert spending()[1] == 0  # an unpaid invoice is no spending (its notice replaced the tokens: read again)
    _fund(customer, "100.00", "spending-chart-fund")
    assert invoice_pay_from_balance(invoice=invoice)
    reads, total = spending()
    assert reads == 1 and total == Invoice.objects.get(pk=invoice.pk).total > 0
    assert spending() == (0, total)
    with translation.override("ru"), CaptureQueriesContext(connection) as queries:  # rendered (and read) once more
        html = spending_charts(customer, timezone.now())
    assert "DATE_TRUNC" in queries[-1]["sql"] and "Расходы" in html[0]
