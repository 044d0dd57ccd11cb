"""accounts raises `security_event` (it may not import us); we turn it into a notification."""
from django.dispatch import receiver

from accounts.signals import security_event

from .services import notify


@receiver(security_event, dispatch_uid="notifications.security_event")
def security_event_notify(sender, *, customer, kind: str, context: dict, link: str = "", **kwargs) -> None:
    notify(customer=customer, kind=kind, context=context, link=link)
