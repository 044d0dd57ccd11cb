"""Login activity from Django's auth signals, and the signals accounts raises for mail it needs sent.

`security_event` is how accounts tells the customer about a login or a security change, and
`email_requested` how it sends a one-off mail (verification, invitation, password reset), without
importing notifications (which sits above it): notifications subscribes in its AppConfig.ready() and
writes the mail to its outbox, so a broker or SMTP outage delays it but never loses it. Both are sent
inside the caller's transaction; receivers run synchronously, so a failure rolls back.
"""
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import Signal, receiver
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from .client_ip import client_ip
from .middleware import customer_zone


class SecurityNotice:
    """What `security_event` tells the customer about; notifications maps each to its notice kind."""

    LOGIN = "login"  # a sign-in, when the customer asked for login alerts
    CHANGE = "change"  # a security-relevant change (password, 2FA, IP allowlist, email, …)


# kwargs: customer, notice (a SecurityNotice), context (JSON-serializable), link.
security_event = Signal()
# kwargs: to, subject, body_text, body_html, dedupe_key (str | None), customer (Customer | None),
# contains_secret (the text holds a link that signs in or sets a password: kept from staff eyes).
email_requested = Signal()


@receiver(user_logged_in, dispatch_uid="accounts.login_recorded")
def login_recorded(sender, request, user, **kwargs):
    from . import selectors
    from .services.activity import login_record

    if not getattr(user, "customer_id", None):
        return
    ip = client_ip(request) if request is not None else ""
    login_record(user=user, ip=ip,
                 user_agent=request.META.get("HTTP_USER_AGENT", "") if request is not None else "")
    if request is not None and user.customer.show_last_login and hasattr(request, "_messages"):
        previous = selectors.previous_login(user=user)
        if previous is not None:
            # The session is new: the middleware has not switched to the customer's zone yet.
            when = formats.date_format(timezone.localtime(previous.created_at, customer_zone(user.customer)),
                                       "DATETIME_FORMAT")
            messages.info(request, _("Previous login: %(time)s from %(ip)s.") % {"time": when, "ip": previous.ip or "-"})


@receiver(user_login_failed, dispatch_uid="accounts.login_failure_recorded")
def login_failure_recorded(sender, credentials, request=None, **kwargs):
    from .services.activity import login_failure_record

    reason = "2fa_code" if credentials.get("second_factor") else "password"
    login_failure_record(username=credentials.get("username", ""),
                         ip=client_ip(request) if request is not None else "", reason=reason)
