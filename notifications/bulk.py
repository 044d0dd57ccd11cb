"""`notify()` for many notices of one kind at once, for batch jobs (auto-renewal, billing.bulk).

`notify_many()` writes what `notify()` writes for each notice — the inbox Notification (the same
(customer, kind, dedupe_key) twice creates nothing), channel dispatch, one EmailOutbox row per
recipient unless the customer switched the kind off (mandatory kinds always) — with a constant
number of statements. The outbox rows are `services.notification_email_rows`, the very rows
`notify()` writes: no body, a reference to the notification, rendered from it when sent
(`services.email_content`). It queues the batch's emails with one task after commit (the outbox
sweeper remains the safety net).

Rendering: the kind's templates are rendered once per language with placeholder tokens in place of
the context values and the link; each notice's text is the stamp with its own
values put in (HTML-escaped in the HTML bodies). The first notice of each language is also rendered
the ordinary way and compared; if the templates did anything with a value but print it, the stamp is
dropped and every notice is rendered the ordinary way. Values that could behave differently from a
token (empty, multi-line, padded, not a string or int) are always rendered the ordinary way.
"""
import functools
import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone, translation
from django.utils.html import escape

from accounts.models import Customer
from accounts.selectors import customer_owners
from core.enqueue import enqueue_task_safely
from core.sql import copy_rows, insert_rows
from core.topbar import topbar_changed

from . import selectors
from .kinds import Kind, kind_spec
from .models import EmailOutbox, Notification
from .services import link_check, notice_render, notification_email_rows

try:
    from .channels import dispatch as _dispatch_channels
except ImportError:  # extra channels are optional
    _dispatch_channels = None

_LINK = "\x02link\x03"


def _token(key: str) -> str:
    return f"\x02{key}\x03"


# --- notices ---------------------------------------------------------------------------------------

@dataclass
class Notice:
    customer: Customer
    context: dict
    link: str = ""
    dedupe_key: str | None = None
    notification_id: int | None = field(default=None, init=False)  # set when stored


@dataclass
class _Rendered:
    subject: str
    body_text: str
    body_html: str


def _stampable(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value != "" and value == value.strip() and "\n" not in value and "\x02" not in value


def _render(kind: str, notice: Notice) -> _Rendered:
    return _Rendered(*notice_render(kind=kind, context=notice.context, link=notice.link))


class _Stamp:
    """A kind's output rendered once with tokens; `fill()` puts one notice's values in."""

    def __init__(self, kind: str, keys: tuple[str, ...]):
        self.keys = keys
        fake = Notice(customer=None, context={key: _token(key) for key in keys}, link=_LINK)
        self.rendered = _render(kind, fake)
        self.usable = len(self.rendered.subject) < 250

    def fits(self, notice: Notice) -> bool:
        return (self.usable and tuple(notice.context) == self.keys and notice.link != ""
                and _stampable(notice.link)
                and all(_stampable(value) for value in notice.context.values()))

    def fill(self, notice: Notice) -> _Rendered:
        values = [(_token(key), str(value)) for key, value in notice.context.items()]
        values.append((_LINK, notice.link))

        def text(stamp: str) -> str:
            for token, value in values:
                stamp = stamp.replace(token, value)
            return stamp

        def html(stamp: str) -> str:
            for token, value in values:
                stamp = stamp.replace(token, escape(value))
            return stamp

        stamp = self.rendered
        return _Rendered(" ".join(text(stamp.subject).split())[:255], text(stamp.body_text), html(stamp.body_html))


def notify_many(*, kind: str, notices: list[Notice]) -> int:
    """Store and queue `notices` (all of `kind`) like `notify()` does one by one, inside the caller's
    transaction. Returns how many notifications were created (deduplicated ones are not)."""
    if not notices:
        return 0
    kind_spec(kind)
    kind = Kind(kind).value
    for notice in notices:
        link_check(notice.link)
        json.dumps(notice.context)
    customers = {notice.customer.pk: notice.customer for notice in notices}
    owners = customer_owners(customers=customers.values())
    stamps: dict[str, _Stamp | None] = {}
    rendered: list[_Rendered] = []
    for notice in notices:
        customer = notice.customer
        with translation.override(customer.language):
            language = translation.get_language()
            if language not in stamps:
                stamp = _Stamp(kind, tuple(notice.context))
                # Proof on a real notice that the stamp renders exactly what the templates do.
                stamps[language] = stamp if stamp.fits(notice) and stamp.fill(notice) == _render(kind, notice) else None
            stamp = stamps[language]
            rendered.append(stamp.fill(notice) if stamp is not None and stamp.fits(notice) else _render(kind, notice))

    now = timezone.now()
    with transaction.atomic(savepoint=False):  # all or nothing; no savepoint needed inside the caller's
        stored = insert_rows(
            Notification,
            [{"customer_id": n.customer.pk, "kind": kind, "subject": r.subject, "body_text": r.body_text,
              "body_html": r.body_html, "link": n.link, "context": n.context, "dedupe_key": n.dedupe_key,
              "created_at": now} for n, r in zip(notices, rendered)],
            on_conflict="ON CONFLICT (customer_id, kind, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
            returning=("id", "customer_id", "dedupe_key"),
        )
        created = []
        rows = iter(stored)
        row = next(rows, None)
        for notice, text in zip(notices, rendered):  # RETURNING keeps the VALUES order of inserted rows
            if row is not None and (row[1], row[2]) == (notice.customer.pk, notice.dedupe_key):
                notice.notification_id = row[0]
                created.append((notice, text))
                row = next(rows, None)
        topbar_changed(notice.customer.pk for notice, _text in created)  # their unread counts
        notifications = [
            Notification(id=notice.notification_id, customer=notice.customer, kind=kind, subject=text.subject,
                         body_text=text.body_text, body_html=text.body_html, link=notice.link, context=notice.context,
                         dedupe_key=notice.dedupe_key, created_at=now)
            for notice, text in created
        ]
        if _dispatch_channels is not None:
            for notification in notifications:
                _dispatch_channels(notification)
        enabled = selectors.emails_enabled(kind=kind, customers={n.customer_id: n.customer for n in notifications})
        emails = [email for notification in notifications if enabled[notification.customer_id]
                  for email in notification_email_rows(notification=notification, owner=owners[notification.customer_id])]
        if emails:
            ids = copy_rows(EmailOutbox, emails, with_ids=True)
            transaction.on_commit(functools.partial(_deliver_batch, ids))
    return len(created)


def _deliver_batch(email_ids: list[int]) -> None:
    from .tasks import email_deliver_batch_task

    enqueue_task_safely(email_deliver_batch_task, email_ids=email_ids)
