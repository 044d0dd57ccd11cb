from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Customer, User
from accounts.roles import ROLE_AREAS, Area
from accounts.selectors import customer_owner
from core.compiled import ROW_COUNT, STAND_IN, CompiledQuery, CompiledRows

from .kinds import (
    CONTEXT_ROUTABLE_CATEGORIES,
    CONTEXT_ROUTED_KINDS,
    KINDS,
    MANDATORY_KINDS,
    OPT_IN_KINDS,
    Category,
    Kind,
    kind_spec,
)
from .models import Notification, NotificationPreference

CATEGORY_ADDRESS_FIELD = {
    Category.BILLING: "email_billing",
    Category.SUPPORT: "email_support",
    Category.ABUSE: "email_abuse",
}


# The portal areas a kind is about: a login sees it (inbox, badge, dashboard, Telegram) when its role
# covers one of them. Service notices matter to whoever runs the servers and whoever pays for them;
# sign-in alerts and security changes only to who manages the account's settings (the owner).
KIND_AREAS: dict[str, frozenset[str]] = {
    Kind.INVOICE_ISSUED: frozenset({Area.BILLING}),
    Kind.INVOICE_REMINDER: frozenset({Area.BILLING}),
    Kind.INVOICE_OVERDUE: frozenset({Area.BILLING}),
    Kind.PAYMENT_RECEIVED: frozenset({Area.BILLING}),
    Kind.LOW_BALANCE: frozenset({Area.BILLING}),
    Kind.AUTOPAY_SUCCEEDED: frozenset({Area.BILLING}),
    Kind.AUTOPAY_FAILED: frozenset({Area.BILLING}),
    Kind.SERVICE_ACTIVATED: frozenset({Area.SERVICES}),
    Kind.SERVICE_EXPIRING: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.SERVICE_RENEWED: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.RENEWAL_FAILED: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.SERVICE_SUSPENDED: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.SERVICE_SUSPENSION_NOTICE: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.SERVICE_TERMINATION_NOTICE: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.SERVICE_TERMINATED: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.PLAN_CHANGED: frozenset({Area.SERVICES, Area.BILLING}),
    Kind.TICKET_REPLY: frozenset({Area.TICKETS}),
    Kind.TICKET_AUTOCLOSE_WARNING: frozenset({Area.TICKETS}),
    Kind.SECURITY_LOGIN: frozenset({Area.SETTINGS}),
    Kind.SECURITY_CHANGE: frozenset({Area.SETTINGS}),
    Kind.NEWSLETTER: frozenset({Area.ACCOUNT}),
    Kind.ABUSE_REPORT: frozenset({Area.SERVICES}),
}


def kinds_visible_to(user: User) -> list[str]:
    areas = ROLE_AREAS.get(user.role, frozenset()) if user.customer_id else frozenset()
    return [kind for kind, needs in KIND_AREAS.items() if needs & areas]


def inbox_for(customer: Customer, *, user: User | None) -> QuerySet[Notification]:
    """The notifications `user` may see (None: all of them, for the account's data export), newest
    first, without the bodies (list pages don't show them)."""
    return _inbox(customer.pk, None if user is None else tuple(kinds_visible_to(user)))


def _inbox(customer_id: int, kinds: tuple[str, ...] | None) -> QuerySet[Notification]:
    rows = Notification.objects.filter(customer_id=customer_id)
    if kinds is not None:
        rows = rows.filter(kind__in=kinds)
    return rows.defer("body_text", "body_html", "context")


INBOX_ROW_FIELDS = ("pk", "kind", "subject", "read_at", "created_at")
_INBOX_QUERIES: dict[tuple[str, ...], tuple[CompiledQuery, CompiledQuery]] = {}  # per kinds seen: they are in the SQL


def inbox_rows(customer: Customer, *, user: User) -> tuple[CompiledRows | list, int]:
    """inbox_for as plain rows (dicts of INBOX_ROW_FIELDS) for the inbox page's Paginator, and their
    count: queries compiled once per set of kinds a role sees (core.compiled)."""
    queries = _inbox_queries(user)
    if queries is None:
        return [], 0  # no kind to see: the ORM would not even write the query
    rows, count = queries
    return CompiledRows(rows, customer_id=customer.pk), count(customer_id=customer.pk)[0][0]


def latest_notifications(customer: Customer, *, user: User, limit: int) -> list[dict]:
    """The newest `limit` of inbox_rows (the dashboard's card), without counting them."""
    queries = _inbox_queries(user)
    return [] if queries is None else queries[0].rows(0, limit, customer_id=customer.pk)


def _inbox_queries(user: User) -> tuple[CompiledQuery, CompiledQuery] | None:
    """The inbox's rows and count queries for the kinds `user` sees (None: no kind)."""
    kinds = tuple(kinds_visible_to(user))
    if not kinds:
        return None
    queries = _INBOX_QUERIES.get(kinds)
    if queries is None:
        queries = _INBOX_QUERIES[kinds] = (
            CompiledQuery(lambda customer_id: _inbox(customer_id, kinds).order_by("-created_at", "-pk").values(*INBOX_ROW_FIELDS),
                          customer_id=STAND_IN),
            CompiledQuery(lambda customer_id: _inbox(customer_id, kinds).order_by().annotate(n=ROW_COUNT).values_list("n"),
                          customer_id=STAND_IN))
    return queries


def notification_get(*, customer: Customer, user: User, notification_id: int) -> Notification:
    notification = Notification.objects.filter(customer=customer, kind__in=kinds_visible_to(user),
                                               pk=notification_id).first()
    if notification is None:
        raise Http404
    return notification


def unread_count(customer: Customer, *, user: User) -> int:
    return Notification.objects.filter(customer=customer, kind__in=kinds_visible_to(user), read_at__isnull=True).count()


def topbar_unread_count(request, customer: Customer) -> int:
    """Top-bar provider: one COUNT per page (core.topbar caches it per request)."""
    return unread_count(customer, user=request.user)


def email_category(*, kind: str, context: dict) -> str:
    category = kind_spec(kind).category
    if kind in CONTEXT_ROUTED_KINDS and context.get("category") in CONTEXT_ROUTABLE_CATEGORIES:
        category = context["category"]
    return category


def _login_roles_by_email(customer: Customer) -> dict[str, str]:
    """Role of each active login of the customer by lower-cased email; one query, cached on the instance."""
    cached = getattr(customer, "_login_roles_by_email", None)
    if cached is None:
        cached = {email.lower(): role for email, role in
                  User.objects.filter(customer=customer, is_active=True).values_list("email", "role")}
        customer._login_roles_by_email = cached
    return cached


def email_recipients(*, customer: Customer, kind: str, context: dict, owner=None) -> list[str]:
    """Where a kind's mail goes: the customer's address for its category, else the owner's email. A
    category address that is a trusted user's own login gets only the kinds that user's role sees in
    the inbox (KIND_AREAS); the others go to the owner."""
    field = CATEGORY_ADDRESS_FIELD.get(email_category(kind=kind, context=context))
    address = getattr(customer, field, "").strip() if field else ""
    if address:
        role = _login_roles_by_email(customer).get(address.lower())
        if role is not None and not KIND_AREAS.get(kind, frozenset()) & ROLE_AREAS.get(role, frozenset()):
            address = ""
    if not address:
        owner = owner or customer_owner(customer=customer)
        address = owner.email.strip() if owner else ""
    return [address] if address else []


def email_enabled(*, customer: Customer, kind: str) -> bool:
    return emails_enabled(kind=kind, customers={customer.pk: customer})[customer.pk]


def emails_enabled(*, kind: str, customers: dict[int, Customer]) -> dict[int, bool]:
    """Whether each customer (by pk) gets `kind` by email, in at most one query: mandatory kinds
    always; the newsletter is Customer.newsletter; others unless switched off (opt-in kinds: on)."""
    if kind in MANDATORY_KINDS:
        return dict.fromkeys(customers, True)
    if kind == Kind.NEWSLETTER:
        return {pk: customer.newsletter for pk, customer in customers.items()}
    stored = dict(NotificationPreference.objects.filter(customer_id__in=list(customers), kind=kind)
                  .values_list("customer_id", "email_enabled"))
    return {pk: stored.get(pk, kind not in OPT_IN_KINDS) for pk in customers}


def subscriptions_for(customer: Customer) -> list[dict]:
    """Every kind with its category and address, whether it can be switched off and the current choice."""
    stored = dict(
        NotificationPreference.objects.filter(customer=customer).values_list("kind", "email_enabled")
    )
    owner = customer_owner(customer=customer)
    rows = []
    for kind, spec in KINDS.items():
        if kind in MANDATORY_KINDS:
            enabled = True
        elif kind == Kind.NEWSLETTER:
            enabled = customer.newsletter
        else:
            enabled = stored.get(kind, kind not in OPT_IN_KINDS)
        rows.append({
            "kind": kind,
            "label": Kind(kind).label,
            "description": spec.description,
            "category": spec.category,
            "category_label": Category(spec.category).label,
            "mandatory": spec.mandatory,
            "opt_in": kind in OPT_IN_KINDS,
            "email_enabled": enabled,
            "address": next(iter(email_recipients(customer=customer, kind=kind, context={}, owner=owner)), ""),
        })
    return rows
