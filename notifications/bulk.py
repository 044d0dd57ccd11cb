"""`notify()` for many notices of one kind at once, for batch jobs (auto-renewal, billing.bulk).

`notify_many()` writes what `notify()` writes for each notice — the inbox Notification (the same
(customer, kind, dedupe_key) twice creates nothing), channel dispatch, one EmailOutbox row per
recipient unless the customer switched the kind off (mandatory kinds always) — with a constant
number of statements. The outbox rows are `services.notification_email_rows`, the very rows
`notify()` writes: no body, a reference to the notification, rendered from it when sent
(`services.email_content`). It queues the batch's emails with one task after commit (the outbox
sweeper remains the safety net).

It runs in two phases a caller may also call apart: `notices_prepare()` checks the notices, renders
their texts and works out who gets mail (reads only: no writes, no locks, so a caller can do it before
taking its own locks), `notices_store()` writes them inside the caller's transaction. No model instance
is built per notice; channels get one only for the customers some channel could reach
(`channels.customers_reached`, asked once per batch).

Rendering: the kind's templates are rendered once per language with placeholder tokens in place of
the context values and the link; each notice's text is the stamp with its own
values put in (HTML-escaped in the HTML bodies). The first notice of each language the stamp fits is
also rendered the ordinary way and compared; if the templates did anything with a value but print it,
the stamp is dropped and every notice is rendered the ordinary way. Values that could behave
differently from a token (empty, multi-line, padded, not a string or int) are always rendered the
ordinary way.
"""
import functools
import html
import json
import re
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone, translation

from accounts.models import Customer
from accounts.selectors import customer_owners
from core.enqueue import enqueue_task_safely
from core.sql import JsonText, copy_rows, insert_rows
from core.topbar import topbar_changed

from . import channels, selectors
from .kinds import Kind, kind_spec
from .models import EmailOutbox, Notification
from .services import link_check, notice_render, notification_email_rows

_LINK_KEY = "link"  # a context value named "link" wins over the link, as it always has
_TOKEN = re.compile("\x02([^\x02\x03]*)\x03")


def _token(key: str) -> str:
    return f"\x02{key}\x03"


Texts = tuple[str, str, str]  # subject, body_text, body_html


# --- notices ---------------------------------------------------------------------------------------

@dataclass
class Notice:
    customer: Customer
    context: dict
    link: str = ""
    dedupe_key: str | None = None
    notification_id: int | None = field(default=None, init=False)  # set when stored


@dataclass
class PreparedNotices:
    """`notices_prepare()`'s result, what `notices_store()` writes: per notice its texts, its context as
    JSON and its mail recipients (none when the customer switched the kind off)."""

    kind: str
    notices: list[Notice]
    texts: list[Texts]
    languages: list[str]  # what each notice's texts were rendered in
    contexts: list[JsonText]
    recipients: list[list[str]]


def _stampable(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value != "" and value == value.strip() and "\n" not in value and "\x02" not in value


class _Stamp:
    """A kind's output rendered once with tokens; `fill()` puts one notice's values in."""

    def __init__(self, kind: str, keys: tuple[str, ...]):
        self.keys = keys
        subject, body_text, body_html = notice_render(kind=kind, context={key: _token(key) for key in keys},
                                                      link=_token(_LINK_KEY))
        self.texts = subject, body_text, body_html
        self.usable = len(subject) < 250
        self.proven = False

    def fits(self, notice: Notice) -> bool:
        return (self.usable and tuple(notice.context) == self.keys and notice.link != ""
                and _stampable(notice.link)
                and all(_stampable(value) for value in notice.context.values()))

    def fill(self, notice: Notice) -> Texts:
        values = {_LINK_KEY: notice.link, **{key: str(value) for key, value in notice.context.items()}}
        escaped = {key: html.escape(value) for key, value in values.items()}  # what autoescape prints
        subject, body_text, body_html = self.texts
        return (" ".join(_TOKEN.sub(lambda m: values[m[1]], subject).split())[:255],
                _TOKEN.sub(lambda m: values[m[1]], body_text), _TOKEN.sub(lambda m: escaped[m[1]], body_html))

    def render(self, kind: str, notice: Notice) -> Texts:
        if not self.fits(notice):
            return notice_render(kind=kind, context=notice.context, link=notice.link)
        if self.proven:
            return self.fill(notice)
        # Proof on a real notice that the stamp renders exactly what the templates do.
        texts = notice_render(kind=kind, context=notice.context, link=notice.link)
        self.proven = self.fill(notice) == texts
        self.usable = self.proven
        return texts


def _render_all(kind: str, notices: list[Notice]) -> tuple[list[Texts], list[str]]:
    """Each notice's texts in its customer's language (one translation.override per language), and that
    language."""
    texts: list[Texts | None] = [None] * len(notices)
    languages: list[str] = [""] * len(notices)
    by_language: dict[str, list[int]] = {}
    for index, notice in enumerate(notices):
        by_language.setdefault(notice.customer.language, []).append(index)
    stamps: dict[str, _Stamp] = {}
    for language, indexes in by_language.items():
        with translation.override(language):
            active = translation.get_language()
            if active not in stamps:
                stamps[active] = _Stamp(kind, tuple(notices[indexes[0]].context))
            stamp = stamps[active]
            for index in indexes:
                texts[index] = stamp.render(kind, notices[index])
                languages[index] = active
    return texts, languages


def notices_check(*, kind: str, notices: list[Notice]) -> tuple[str, list[JsonText]]:
    """What `notify()` refuses, refused in the caller's code before anything is written: an unknown kind,
    a link off the site, a context that is not JSON. Returns the kind's value and each context as JSON."""
    kind_spec(kind)
    contexts = []
    for notice in notices:
        link_check(notice.link)
        contexts.append(JsonText(json.dumps(notice.context)))
    return Kind(kind).value, contexts


def notices_prepare(*, kind: str, notices: list[Notice]) -> PreparedNotices:
    """Check `notices` (all of `kind`), render them and work out their mail recipients, as `notify()`
    does; reads only, so it may run before the caller's locks. `notices_store()` writes the result."""
    kind, contexts = notices_check(kind=kind, notices=notices)
    customers = {notice.customer.pk: notice.customer for notice in notices}
    recipients: list[list[str]] = [[] for _notice in notices]
    if notices:
        owners = customer_owners(customers=customers.values())
        enabled = selectors.emails_enabled(kind=kind, customers=customers)
        recipients = [selectors.email_recipients(customer=notice.customer, kind=kind, context=notice.context,
                                                 owner=owners[notice.customer.pk])
                      if enabled[notice.customer.pk] else [] for notice in notices]
    texts, languages = _render_all(kind, notices)
    return PreparedNotices(kind=kind, notices=notices, texts=texts, languages=languages, contexts=contexts,
                           recipients=recipients)


def notices_store(prepared: PreparedNotices) -> int:
    """Store and queue prepared notices like `notify()` does one by one, inside the caller's
    transaction. Returns how many notifications were created (deduplicated ones are not)."""
    if not prepared.notices:
        return 0
    kind, now = prepared.kind, timezone.now()
    with transaction.atomic(savepoint=False):  # all or nothing; no savepoint needed inside the caller's
        created = _insert_notifications(prepared, now)
        topbar_changed({prepared.notices[index].customer.pk for index in created})  # their unread counts
        _dispatch(prepared, created, now)
        emails = [email for index in created for email in notification_email_rows(
            notification_id=prepared.notices[index].notification_id, customer_id=prepared.notices[index].customer.pk,
            kind=kind, subject=prepared.texts[index][0], created_at=now, recipients=prepared.recipients[index])]
        if emails:
            ids = copy_rows(EmailOutbox, emails, with_ids=True)
            transaction.on_commit(functools.partial(_deliver_batch, ids))
    return len(created)


def notify_many(*, kind: str, notices: list[Notice]) -> int:
    """`notices_store(notices_prepare(...))`: store and queue `notices` (all of `kind`) like `notify()`
    does one by one, inside the caller's transaction. Returns how many notifications were created."""
    return notices_store(notices_prepare(kind=kind, notices=notices))


def _insert_notifications(prepared: PreparedNotices, now) -> list[int]:
    """Insert the notifications; the indexes of the notices created (the others were duplicates), each
    with its `notification_id` set."""
    notices, texts = prepared.notices, prepared.texts
    stored = insert_rows(
        Notification,
        [{"customer_id": notice.customer.pk, "kind": prepared.kind, "subject": subject, "body_text": body_text,
          "body_html": body_html, "link": notice.link, "context": context, "dedupe_key": notice.dedupe_key,
          "language": language, "created_at": now}
         for notice, (subject, body_text, body_html), language, context
         in zip(notices, texts, prepared.languages, prepared.contexts)],
        on_conflict="ON CONFLICT (customer_id, kind, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
        returning=("id", "customer_id", "dedupe_key"),
    )
    created = []
    rows = iter(stored)
    row = next(rows, None)
    for index, notice in enumerate(notices):  # RETURNING keeps the VALUES order of inserted rows
        if row is not None and (row[1], row[2]) == (notice.customer.pk, notice.dedupe_key):
            notice.notification_id = row[0]
            created.append(index)
            row = next(rows, None)
    return created


def _dispatch(prepared: PreparedNotices, created: list[int], now) -> None:
    """Channel dispatch of the created notifications, for the customers a channel could reach."""
    if not created:
        return
    reached = channels.customers_reached(
        kind=prepared.kind, customer_ids={prepared.notices[index].customer.pk for index in created})
    for index in created:
        notice = prepared.notices[index]
        if notice.customer.pk in reached:
            subject, body_text, body_html = prepared.texts[index]
            channels.dispatch(Notification(
                id=notice.notification_id, customer=notice.customer, kind=prepared.kind, subject=subject,
                body_text=body_text, body_html=body_html, link=notice.link, context=notice.context,
                dedupe_key=notice.dedupe_key, language=prepared.languages[index], created_at=now))


def _deliver_batch(email_ids: list[int]) -> None:
    from .tasks import email_deliver_batch_task

    enqueue_task_safely(email_deliver_batch_task, email_ids=email_ids)
