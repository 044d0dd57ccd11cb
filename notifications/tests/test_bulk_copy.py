"""core.sql.copy_rows: COPY writes exactly what insert_rows writes, awkward text included."""
import json
from datetime import datetime, timezone as dt_timezone

import pytest

from core.sql import JsonText, copy_rows, insert_rows
from notifications.models import EmailOutbox, Notification

pytestmark = pytest.mark.django_db

AWKWARD = "tab\there, new\nline, cr\rback\\slash \\N, quote ' \" and ünïcode"
WHEN = datetime(2026, 12, 4, 12, 30, 15, 123456, tzinfo=dt_timezone.utc)


def test_copy_rows_stores_the_same_values_as_insert_rows_and_returns_ids_in_order(customer):
    rows = [{"customer_id": customer.pk, "recipient": f"r{n}@example.com", "subject": f"{AWKWARD} {n}",
             "body_text": AWKWARD, "body_html": "", "created_at": WHEN, "next_attempt_at": WHEN,
             "dedupe_key": None if n else "k"} for n in range(3)]
    ids = copy_rows(EmailOutbox, rows, with_ids=True)
    assert len(ids) == 3 and ids == sorted(ids)
    for pk, row in zip(ids, rows):
        email = EmailOutbox.objects.get(pk=pk)
        assert (email.recipient, email.subject, email.body_text, email.created_at, email.dedupe_key,
                email.status, email.attempts) == (row["recipient"], row["subject"], AWKWARD, WHEN, row["dedupe_key"],
                                                  "pending", 0)
    [inserted] = insert_rows(EmailOutbox, [rows[1] | {"recipient": "x@example.com"}])
    assert EmailOutbox.objects.get(pk=inserted).subject == EmailOutbox.objects.get(pk=ids[1]).subject


def test_copy_rows_writes_json_and_nulls(customer):
    context = {"text": AWKWARD, "n": 1, "nested": {"ok": True, "none": None}}
    copy_rows(Notification, [{"customer_id": customer.pk, "kind": "low_balance", "subject": "s", "body_text": AWKWARD,
                              "body_html": "<p>h</p>", "context": context, "dedupe_key": None, "created_at": WHEN}])
    notification = Notification.objects.get()
    assert (notification.context, notification.body_text, notification.dedupe_key, notification.read_at) == (
        context, AWKWARD, None, None)


def test_json_serialized_by_the_caller_is_stored_as_the_value_itself(customer):
    context = {"text": AWKWARD, "n": 1, "nested": {"ok": True, "none": None}}
    row = {"customer_id": customer.pk, "kind": "low_balance", "subject": "s", "body_text": "t", "body_html": "h",
           "created_at": WHEN}
    [inserted] = insert_rows(Notification, [row | {"context": JsonText(json.dumps(context))}])
    [copied] = copy_rows(Notification, [row | {"context": JsonText(json.dumps(context))}], with_ids=True)
    assert [Notification.objects.get(pk=pk).context for pk in (inserted, copied)] == [context, context]
