"""The audit trail and the notices of security-relevant changes, shared by every accounts sub-domain.

Every change calls `activity_record`; a change the customer must hear about goes through
`security_event_record` (activity row + `security_change` notice). Notices leave as the
`security_event` signal, which notifications (above us in the app map) subscribes to.
"""
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation

from ..models import ActivityEvent, Customer, User
from ..signals import SecurityNotice


def activity_record(
    *,
    action: str,
    customer: Customer | None = None,
    actor: User | None = None,
    ip: str | None = None,
    details: dict | None = None,
    visible_to_customer: bool = True,
):
    """Append one audit/activity row in the caller's transaction. `details` must be JSON-serializable."""
    return ActivityEvent.objects.create(
        action=action,
        customer=customer,
        actor=actor if actor is not None and actor.pk else None,
        ip=ip or None,
        details=details or {},
        visible_to_customer=visible_to_customer,
    )


# --- Notifications bridge ------------------------------------------------------------------------

def _notify(*, customer: Customer, notice: str, context: dict, link: str = "") -> None:
    """Raise `security_event`; notifications (above us in the app map) subscribes and sends it."""
    from ..signals import security_event

    security_event.send(sender=Customer, customer=customer, notice=notice, context=context, link=link)


def translated_later(message, **params):
    """A change description rendered later, in the language of the customer who receives it."""
    return lambda: str(message) % {key: str(value) for key, value in params.items()}


def _when(customer: Customer) -> str:
    """Now, in the customer's time zone (emails are read there too)."""
    from ..middleware import customer_zone

    return timezone.localtime(timezone.now(), customer_zone(customer)).strftime("%Y-%m-%d %H:%M %Z")


def security_change_notify(*, user: User, change, ip: str | None = None, extra_email: str = "") -> None:
    """Tell the account about a security-relevant change (mandatory kind `security_change`).

    `change` is a lazy string or a `translated_later(...)` callable, translated in the customer's language.
    """
    with translation.override(user.customer.language):
        text = change() if callable(change) else str(change)
    context = {"change": text, "username": user.username, "ip": ip or "", "when": _when(user.customer)}
    if extra_email:
        context["previous_email"] = extra_email
    _notify(customer=user.customer, notice=SecurityNotice.CHANGE, context=context, link=reverse("accounts:activity"))


def security_event_record(*, user: User, action: str, change: str, ip: str | None, details: dict | None = None,
                          actor: User | None = None) -> None:
    """One security-relevant change: an activity row, and the `security_change` notice to the customer."""
    activity_record(action=action, customer=user.customer if user.customer_id else None, actor=actor or user, ip=ip,
                    details=details)
    if user.customer_id:  # staff logins have no customer inbox: the audit row is the record
        security_change_notify(user=user, change=change, ip=ip)


# --- Logins ------------------------------------------------------------------------------------------

def login_record(*, user: User, ip: str, user_agent: str = "") -> None:
    """A successful login: activity row and, if the customer asked for it, an alert."""
    if not user.customer_id:
        return
    with transaction.atomic():
        activity_record(action="login", customer=user.customer, actor=user, ip=ip)
        if user.customer.login_alerts:
            _notify(customer=user.customer, notice=SecurityNotice.LOGIN, context={
                "username": user.username, "ip": ip or "", "when": _when(user.customer), "user_agent": user_agent[:200],
            }, link=reverse("accounts:activity"))


def login_failure_record(*, username: str, ip: str, reason: str = "password") -> None:
    field = "email__iexact" if "@" in (username or "") else "username__iexact"
    user = User.objects.select_related("customer").filter(**{field: (username or "").strip()}).first() if username else None
    if user is None or not user.customer_id:
        return
    activity_record(action="login_failed", customer=user.customer, actor=user, ip=ip, details={"reason": reason})
