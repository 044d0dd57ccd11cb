"""`notify()` for many notices of one kind at once, for batch jobs (auto-renewal, billing.bulk).

`notify_many()` writes what `notify()` writes for each notice — the inbox Notification (the same
(customer, kind, dedupe_key) twice creates nothing), channel dispatch, one EmailOutbox row per
recipient unless the customer switched the kind off (mandatory kinds always) — with a constant
number of statements, except that the outbox rows carry no body: they refer to the notification
and the email is rendered from it when it is sent (`services.email_content`), which halves what a
batch writes. It queues the batch's emails with one task after commit (the outbox sweeper
remains the safety net).

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

from django.db import connection, models, transaction
from django.utils import timezone, translation
from django.utils.html import escape

from accounts.models import Customer
from accounts.selectors import customer_owners
from core.topbar import topbar_changed

from . import selectors
from .kinds import MANDATORY_KINDS, OPT_IN_KINDS, Kind, kind_spec
from .models import EmailOutbox, Notification, NotificationPreference
from .services import link_check, notice_render

try:
    from .channels import dispatch as _dispatch_channels
except ImportError:  # extra channels are optional
    _dispatch_channels = None

_LINK = "\x02link\x03"
_MISSING = object()


def _token(key: str) -> str:
    return f"\x02{key}\x03"


# --- SQL helpers (billing.bulk uses them too): one statement for many rows, through Django's cursor ---

def _field_defaults(model, now) -> list[tuple[models.Field, object]]:
    fields = []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key:
            continue
        if getattr(model_field, "auto_now_add", False) or getattr(model_field, "auto_now", False):
            default = now
        elif model_field.has_default() or model_field.null or (model_field.blank and model_field.empty_strings_allowed):
            default = model_field.get_default()  # the model default, else None or ""
        else:
            default = _MISSING
        fields.append((model_field, default))
    return fields


def _adapt(field: models.Field, value):
    if isinstance(field, models.JSONField) and value is not None:
        from psycopg2.extras import Json

        return Json(value, dumps=json.dumps)
    return value


def insert_rows(model, rows: list[dict], *, returning: str | tuple[str, ...] | None = "id", on_conflict: str = "") -> list:
    """INSERT many rows of `model` (dicts by attname; omitted fields take their model default) in one
    statement. Returns the `returning` column per inserted row, in the order given."""
    if not rows:
        return []
    now = timezone.now()
    fields = _field_defaults(model, now)
    raw = connection.cursor().cursor  # psycopg2's mogrify quotes each value exactly as execute() would
    template = "(" + ", ".join(["%s"] * len(fields)) + ")"
    values = []
    for row in rows:
        params = []
        for model_field, default in fields:
            value = row.get(model_field.attname, default)
            if value is _MISSING:
                raise ValueError(f"{model.__name__}.{model_field.attname} is required")
            params.append(_adapt(model_field, value))
        values.append(raw.mogrify(template, params).decode())
    sql = (f'INSERT INTO "{model._meta.db_table}" ({", ".join(chr(34) + f.column + chr(34) for f, _d in fields)}) '
           f"VALUES {', '.join(values)} {on_conflict}")
    columns = (returning,) if isinstance(returning, str) else returning or ()
    if columns:
        sql += " RETURNING " + ", ".join(f'"{column}"' for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        if not columns:
            return []
        return [row[0] for row in cursor.fetchall()] if isinstance(returning, str) else cursor.fetchall()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(field: models.Field, value) -> str:
    """One value in COPY's text format (as `execute` would quote it, minus the SQL)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(field, models.JSONField):
        value = json.dumps(value)
    elif hasattr(value, "isoformat"):
        value = value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def copy_rows(model, rows: list[dict], *, with_ids: bool = False) -> list[int]:
    """`insert_rows` without ON CONFLICT, through COPY: no per-row quoting with mogrify and a cheaper
    parse for PostgreSQL. Insert triggers (the ledger's balanced-legs check) still run. COPY returns
    nothing: `with_ids` takes the primary keys from the table's sequence first (one statement) and
    returns them in the order given. (Django's query log does not see the COPY itself.)"""
    if not rows:
        return []
    import io

    fields = _field_defaults(model, timezone.now())
    ids = []
    if with_ids:
        pk = model._meta.pk
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [model._meta.db_table, pk.column, len(rows)])
            ids = [row[0] for row in cursor.fetchall()]
        rows = [{**row, pk.attname: pk_value} for row, pk_value in zip(rows, ids)]
        fields = [(pk, _MISSING), *fields]
    lines = []
    for row in rows:
        values = []
        for model_field, default in fields:
            value = row.get(model_field.attname, default)
            if value is _MISSING:
                raise ValueError(f"{model.__name__}.{model_field.attname} is required")
            values.append(_copy_value(model_field, value))
        lines.append("\t".join(values))
    columns = ", ".join(f'"{f.column}"' for f, _d in fields)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN',
                                  io.StringIO("\n".join(lines) + "\n"))
    return ids


def update_rows(model, rows: list[dict], fields: list[str], *, key: str = "id") -> int:
    """UPDATE many rows of `model`, each to its own values, in one statement (`rows` are dicts with
    `key` and every name in `fields`)."""
    if not rows:
        return 0
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    key_field = meta.get_field(key)
    raw = connection.cursor().cursor
    template = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    values = ", ".join(raw.mogrify(template, [row[key]] + [_adapt(f, row[f.attname]) for f in columns]).decode()
                       for row in rows)
    assignments = ", ".join(f'"{f.column}" = v."{f.column}"::{f.db_type(connection)}' for f in columns)
    names = ", ".join(f'"{f.column}"' for f in [key_field, *columns])
    sql = (f'UPDATE "{meta.db_table}" AS t SET {assignments} FROM (VALUES {values}) AS v({names}) '
           f'WHERE t."{key_field.column}" = v."{key_field.column}"::{key_field.db_type(connection)}')
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.rowcount


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


def _email_enabled(kind: str, customers: dict[int, Customer]) -> dict[int, bool]:
    """`selectors.email_enabled` for many customers in one query."""
    if kind in MANDATORY_KINDS:
        return dict.fromkeys(customers, True)
    if kind == Kind.NEWSLETTER:
        return {pk: customer.newsletter for pk, customer in customers.items()}
    stored = dict(NotificationPreference.objects.filter(customer_id__in=list(customers), kind=kind)
                  .values_list("customer_id", "email_enabled"))
    return {pk: stored.get(pk, kind not in OPT_IN_KINDS) for pk in customers}


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
        if _dispatch_channels is not None:
            for notice, text in created:
                _dispatch_channels(Notification(
                    id=notice.notification_id, customer=notice.customer, kind=kind, subject=text.subject,
                    body_text=text.body_text, body_html=text.body_html, link=notice.link, context=notice.context,
                    dedupe_key=notice.dedupe_key, created_at=now))
        enabled = _email_enabled(kind, {n.customer.pk: n.customer for n, _text in created})
        emails = [
            # The row refers to its notification; the email is rendered from it when it is sent.
            {"notification_id": notice.notification_id, "customer_id": notice.customer.pk, "kind": kind,
             "recipient": recipient, "subject": text.subject, "body_text": "", "body_html": "",
             "next_attempt_at": now, "created_at": now}
            for notice, text in created if enabled[notice.customer.pk]
            for recipient in selectors.email_recipients(customer=notice.customer, kind=kind, context=notice.context,
                                                        owner=owners[notice.customer.pk])
        ]
        if emails:
            ids = copy_rows(EmailOutbox, emails, with_ids=True)
            transaction.on_commit(functools.partial(_deliver_batch, ids))
    return len(created)


def _deliver_batch(email_ids: list[int]) -> None:
    from .services import enqueue_task_safely
    from .tasks import email_deliver_batch_task

    enqueue_task_safely(email_deliver_batch_task, email_ids=email_ids)
