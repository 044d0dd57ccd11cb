"""What can be notified, where each kind's mail goes and whether the customer may turn it off.

Callers pass `Kind.X` (a str) plus a JSON-serializable context. Each kind renders
`notifications/kinds/<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`; `CONTEXT_KEYS` lists what
those templates read (a missing key renders as empty).
"""
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class Category(models.TextChoices):
    BILLING = "billing", _("Accounts and orders")
    SUPPORT = "support", _("Technical support")
    ABUSE = "abuse", _("Abuse")
    SECURITY = "security", _("Security")
    MARKETING = "marketing", _("News and offers")


class Kind(models.TextChoices):
    INVOICE_ISSUED = "invoice_issued", _("Invoice issued")
    INVOICE_REMINDER = "invoice_reminder", _("Invoice payment reminder")
    INVOICE_OVERDUE = "invoice_overdue", _("Invoice overdue")
    PAYMENT_RECEIVED = "payment_received", _("Payment received")
    LOW_BALANCE = "low_balance", _("Low balance")
    AUTOPAY_SUCCEEDED = "autopay_succeeded", _("Automatic payment succeeded")
    AUTOPAY_FAILED = "autopay_failed", _("Automatic payment failed")
    SERVICE_ACTIVATED = "service_activated", _("Service activated")
    SERVICE_EXPIRING = "service_expiring", _("Service expiring soon")
    SERVICE_RENEWED = "service_renewed", _("Service renewed")
    RENEWAL_FAILED = "renewal_failed", _("Renewal failed")
    SERVICE_SUSPENSION_NOTICE = "service_suspension_notice", _("Service will be suspended")
    SERVICE_SUSPENDED = "service_suspended", _("Service suspended")
    SERVICE_TERMINATION_NOTICE = "service_termination_notice", _("Service will be terminated")
    SERVICE_TERMINATED = "service_terminated", _("Service terminated")
    PLAN_CHANGED = "plan_changed", _("Plan changed")
    TRAFFIC_OVER_QUOTA = "traffic_over_quota", _("Traffic quota used up")
    TICKET_REPLY = "ticket_reply", _("Reply to a ticket")
    TICKET_AUTOCLOSE_WARNING = "ticket_autoclose_warning", _("Ticket will be closed")
    SECURITY_LOGIN = "security_login", _("Sign-in to your account")
    SECURITY_CHANGE = "security_change", _("Security settings changed")
    NEWSLETTER = "newsletter", _("Newsletter")
    ABUSE_REPORT = "abuse_report", _("Abuse report")


@dataclass(frozen=True)
class KindSpec:
    category: str
    mandatory: bool  # always emailed; the subscriptions page shows it locked
    description: str


KINDS: dict[str, KindSpec] = {
    Kind.INVOICE_ISSUED: KindSpec(Category.BILLING, True, _("A new invoice is waiting for payment.")),
    Kind.INVOICE_REMINDER: KindSpec(Category.BILLING, False, _("An invoice will soon be due.")),
    Kind.INVOICE_OVERDUE: KindSpec(Category.BILLING, True, _("An invoice is overdue.")),
    Kind.PAYMENT_RECEIVED: KindSpec(Category.BILLING, False, _("A payment was credited to your balance.")),
    Kind.LOW_BALANCE: KindSpec(Category.BILLING, False, _("Your balance fell below the alert threshold.")),
    Kind.AUTOPAY_SUCCEEDED: KindSpec(Category.BILLING, False, _("An automatic payment went through.")),
    Kind.AUTOPAY_FAILED: KindSpec(Category.BILLING, True, _("An automatic payment could not be made.")),
    Kind.SERVICE_ACTIVATED: KindSpec(Category.BILLING, False, _("A new service is ready, with its access details.")),
    Kind.SERVICE_EXPIRING: KindSpec(Category.BILLING, False, _("A service is about to expire.")),
    Kind.SERVICE_RENEWED: KindSpec(Category.BILLING, False, _("A service was renewed for another period.")),
    Kind.RENEWAL_FAILED: KindSpec(Category.BILLING, True, _("A service could not be renewed.")),
    Kind.SERVICE_SUSPENSION_NOTICE: KindSpec(Category.BILLING, True, _("An unpaid service is about to be suspended.")),
    Kind.SERVICE_TERMINATION_NOTICE: KindSpec(Category.BILLING, True, _("A suspended service is about to be terminated.")),
    Kind.SERVICE_SUSPENDED: KindSpec(Category.BILLING, True, _("A service was suspended.")),
    Kind.SERVICE_TERMINATED: KindSpec(Category.BILLING, True, _("A service was terminated and its data deleted.")),
    Kind.PLAN_CHANGED: KindSpec(Category.BILLING, False, _("The plan of a service was changed.")),
    Kind.TRAFFIC_OVER_QUOTA: KindSpec(
        Category.BILLING, False, _("A server used its plan's monthly traffic (told once a month).")
    ),
    Kind.TICKET_REPLY: KindSpec(Category.SUPPORT, False, _("Support answered one of your tickets.")),
    Kind.TICKET_AUTOCLOSE_WARNING: KindSpec(
        Category.SUPPORT, False, _("A ticket waiting for your answer will be closed soon.")
    ),
    Kind.SECURITY_LOGIN: KindSpec(Category.SECURITY, True, _("Someone signed in to your account.")),
    Kind.SECURITY_CHANGE: KindSpec(
        Category.SECURITY, True, _("Your password, two-factor authentication or IP access list changed.")
    ),
    Kind.NEWSLETTER: KindSpec(Category.MARKETING, False, _("News, offers and maintenance announcements.")),
    Kind.ABUSE_REPORT: KindSpec(Category.ABUSE, True, _("A complaint about one of your services needs your action.")),
}

# Kinds whose mail may go to another category's address: the ticket's department decides.
CONTEXT_ROUTED_KINDS = frozenset({Kind.TICKET_REPLY, Kind.TICKET_AUTOCLOSE_WARNING})
CONTEXT_ROUTABLE_CATEGORIES = frozenset({Category.SUPPORT, Category.BILLING, Category.ABUSE})

MANDATORY_KINDS = frozenset(kind for kind, spec in KINDS.items() if spec.mandatory)
# Opt-in kinds are off until the customer turns them on (stored as Customer.newsletter).
OPT_IN_KINDS = frozenset({Kind.NEWSLETTER})

# What each kind's templates read from `context`. Amounts and dates come preformatted as strings.
CONTEXT_KEYS: dict[str, tuple[str, ...]] = {
    Kind.INVOICE_ISSUED: ("invoice_number", "amount", "due_date"),
    Kind.INVOICE_REMINDER: ("invoice_number", "amount", "due_date"),
    Kind.INVOICE_OVERDUE: ("invoice_number", "amount", "due_date", "days_overdue", "late_fee"),
    Kind.PAYMENT_RECEIVED: ("amount", "method", "balance"),
    Kind.LOW_BALANCE: ("balance", "threshold"),
    Kind.AUTOPAY_SUCCEEDED: ("service", "amount"),
    Kind.AUTOPAY_FAILED: ("service", "amount", "reason"),
    Kind.SERVICE_ACTIVATED: ("service", "ip"),
    Kind.SERVICE_EXPIRING: ("service", "expires_at", "days_left"),
    Kind.SERVICE_RENEWED: ("service", "expires_at", "amount"),
    Kind.RENEWAL_FAILED: ("service", "expires_at", "reason"),
    Kind.SERVICE_SUSPENSION_NOTICE: ("service", "suspends_on"),
    Kind.SERVICE_TERMINATION_NOTICE: ("service", "terminates_on"),
    Kind.SERVICE_SUSPENDED: ("service", "reason"),
    Kind.SERVICE_TERMINATED: ("service", "reason"),
    Kind.PLAN_CHANGED: ("service", "old_plan", "new_plan"),
    Kind.TRAFFIC_OVER_QUOTA: ("service", "used_gib", "quota_tb", "throttle_mbps", "period_started", "period_ends"),
    Kind.TICKET_REPLY: ("ticket_id", "ticket_subject", "author", "excerpt"),
    Kind.TICKET_AUTOCLOSE_WARNING: ("ticket_id", "ticket_subject", "closes_at"),
    Kind.SECURITY_LOGIN: ("ip", "when", "user_agent"),
    Kind.SECURITY_CHANGE: ("change", "ip", "when"),
    Kind.NEWSLETTER: ("title", "text"),
    Kind.ABUSE_REPORT: ("service", "ip", "summary"),
}


def kind_spec(kind: str) -> KindSpec:
    try:
        return KINDS[Kind(kind)]
    except ValueError:
        raise ValueError(f"Unknown notification kind: {kind!r}") from None
