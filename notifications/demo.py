"""Demo inbox: a few notices sent through notify(), as the live portal would send them."""
from django.urls import reverse
from django.utils import timezone

from . import services
from .kinds import Kind


def seed(*, customer, owner, stdout) -> None:
    services.notify(
        customer=customer, kind=Kind.NEWSLETTER,
        context={
            "title": "Welcome to your client area",
            "text": "Here you can order servers, top up your balance, pay invoices and talk to support.\n\n"
                    "Every notice we email you is also kept on this Notifications page.",
        },
    )
    services.notify(
        customer=customer, kind=Kind.NEWSLETTER, dedupe_key="maintenance:ams1:2026-12",
        context={
            "title": "Planned network maintenance in Amsterdam (AMS1)",
            "text": "On the first Sunday of next month, 02:00–04:00 UTC, we upgrade the core routers in AMS1.\n"
                    "Expect up to two short interruptions of about 30 seconds each. No action is needed.",
        },
    )
    login = services.notify(
        customer=customer, kind=Kind.SECURITY_LOGIN, link=reverse("accounts:settings"),
        context={"ip": "203.0.113.24", "when": timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
                 "user_agent": "Firefox 133 on Linux"},
    )
    services.notification_mark_read(customer=customer, user=owner, notification_id=login.pk)
    stdout.write("notifications: 3 demo notifications (1 read)")
