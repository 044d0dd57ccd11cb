"""accounts raises `security_event` and `email_requested` (it may not import us): we turn them into a
notification and an outbox email."""
from django.dispatch import receiver

from accounts.signals import SecurityNotice, email_requested, security_event

from .kinds import Kind
from .services import email_enqueue, notify

SECURITY_NOTICE_KINDS = {SecurityNotice.LOGIN: Kind.SECURITY_LOGIN, SecurityNotice.CHANGE: Kind.SECURITY_CHANGE}


@receiver(security_event, dispatch_uid="notifications.security_event")
def security_event_notify(sender, *, customer, notice: str, context: dict, link: str = "", **kwargs) -> None:
    notify(customer=customer, kind=SECURITY_NOTICE_KINDS[notice], context=context, link=link)


@receiver(email_requested, dispatch_uid="notifications.email_requested")
def email_requested_enqueue(sender, *, to: str, subject: str, body_text: str, body_html: str = "",
                            dedupe_key: str | None = None, customer=None, contains_secret: bool = False,
                            **kwargs) -> None:
    email_enqueue(to=to, subject=subject, body_text=body_text, body_html=body_html, dedupe_key=dedupe_key,
                  customer=customer, contains_secret=contains_secret)
