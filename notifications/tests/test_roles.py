"""Each login sees only the notifications its role's areas cover: inbox, detail, badge, mark-all-read,
dashboard, Telegram choices and the navigation (issue 16 #6, issue 15 #13)."""
import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from notifications import services
from notifications.kinds import Kind
from notifications.models import Notification
from notifications.telegram.selectors import kinds_available

pytestmark = pytest.mark.django_db

CONTEXT = {
    Kind.INVOICE_ISSUED: {"number": "INV-1", "amount": "10 EUR"},
    Kind.SECURITY_LOGIN: {"username": "owner", "ip": "198.51.100.23"},
    Kind.TICKET_REPLY: {"ticket_id": 7, "subject": "Disk full"},
    Kind.SERVICE_SUSPENDED: {"order_id": 4},
}
SEES = {
    User.Role.OWNER: {Kind.INVOICE_ISSUED, Kind.SECURITY_LOGIN, Kind.TICKET_REPLY, Kind.SERVICE_SUSPENDED},
    User.Role.FINANCE: {Kind.INVOICE_ISSUED, Kind.SERVICE_SUSPENDED},
    User.Role.TECHNICAL: {Kind.TICKET_REPLY, Kind.SERVICE_SUSPENDED},
}


@pytest.fixture
def team(customer):
    logins = {User.Role.OWNER: customer.users.get(role=User.Role.OWNER)}
    for role in (User.Role.FINANCE, User.Role.TECHNICAL):
        logins[role] = UserFactory(customer=customer, role=role, username=f"team-{role}")
    notices = {kind: services.notify(customer=customer, kind=kind, context=context) for kind, context in CONTEXT.items()}
    return logins, notices


@pytest.mark.parametrize("role", [User.Role.OWNER, User.Role.FINANCE, User.Role.TECHNICAL])
def test_inbox_detail_and_badge_show_only_the_roles_kinds(client, team, role):
    logins, notices = team
    client.force_login(logins[role])
    inbox = client.get(reverse("notifications:inbox"))
    assert {n["kind"] for n in inbox.context["page"]} == SEES[role]  # rows: dicts (selectors.inbox_rows)
    assert inbox.context["topbar"]["notifications_unread"] == len(SEES[role])
    for kind, notice in notices.items():
        status = client.get(reverse("notifications:detail", args=[notice.pk])).status_code
        assert status == (200 if kind in SEES[role] else 404), kind
        read = client.post(reverse("notifications:read", args=[notice.pk])).status_code
        assert (read == 404) == (kind not in SEES[role]), kind
    dashboard = client.get(reverse("dashboard"))
    assert {n["kind"] for n in dashboard.context["notifications"]} == SEES[role]  # dicts too (latest_notifications)


def test_mark_all_read_leaves_what_the_role_does_not_see_unread(client, team):
    logins, notices = team
    client.force_login(logins[User.Role.TECHNICAL])
    client.post(reverse("notifications:read_all"))
    unread = set(Notification.objects.filter(read_at__isnull=True).values_list("kind", flat=True))
    assert unread == {Kind.INVOICE_ISSUED, Kind.SECURITY_LOGIN}


def test_telegram_offers_the_same_kinds_as_the_inbox(team):
    logins, _notices = team
    technical = set(kinds_available(logins[User.Role.TECHNICAL]))
    assert {Kind.TICKET_REPLY, Kind.SERVICE_ACTIVATED, Kind.SERVICE_SUSPENDED, Kind.ABUSE_REPORT} <= technical
    assert not technical & {Kind.INVOICE_ISSUED, Kind.PAYMENT_RECEIVED, Kind.LOW_BALANCE, Kind.SECURITY_LOGIN,
                            Kind.SECURITY_CHANGE}
    finance = set(kinds_available(logins[User.Role.FINANCE]))
    assert Kind.INVOICE_ISSUED in finance and not finance & {Kind.TICKET_REPLY, Kind.SECURITY_LOGIN}


def test_technical_navigation_has_no_balance_or_billing_links(client, team):
    logins, _notices = team
    client.force_login(logins[User.Role.TECHNICAL])
    page = client.get(reverse("notifications:inbox")).content.decode()
    for marker in ('data-testid="topbar-balance"', 'data-testid="nav-balance"', 'data-testid="nav-invoices"',
                   reverse("billing:balance"), reverse("billing:invoices")):
        assert marker not in page, marker
    assert 'data-testid="nav-orders"' in page and 'data-testid="nav-tickets"' in page
    client.force_login(logins[User.Role.FINANCE])
    page = client.get(reverse("notifications:inbox")).content.decode()
    assert 'data-testid="topbar-balance"' in page and 'data-testid="nav-invoices"' in page
    assert 'data-testid="nav-orders"' not in page and 'data-testid="nav-tickets"' not in page


def test_a_category_address_that_is_a_trusted_login_gets_only_what_that_role_sees(customer):
    from notifications.models import EmailOutbox

    owner = customer.users.get(role=User.Role.OWNER)
    UserFactory(customer=customer, role=User.Role.TECHNICAL, email="tech@example.com")
    customer.email_billing = "tech@example.com"  # the owner pointed billing mail at the technician
    customer.email_support = "tech@example.com"
    customer.save(update_fields=["email_billing", "email_support"])
    services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, context=CONTEXT[Kind.INVOICE_ISSUED])
    services.notify(customer=customer, kind=Kind.SERVICE_SUSPENDED, context=CONTEXT[Kind.SERVICE_SUSPENDED])
    services.notify(customer=customer, kind=Kind.TICKET_REPLY, context=CONTEXT[Kind.TICKET_REPLY])
    recipients = dict(EmailOutbox.objects.values_list("kind", "recipient"))
    assert recipients == {Kind.INVOICE_ISSUED: owner.email, Kind.SERVICE_SUSPENDED: "tech@example.com",
                          Kind.TICKET_REPLY: "tech@example.com"}
