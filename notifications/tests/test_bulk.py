"""notifications.bulk: prepare (reads only) then store, the stamp's texts, and channel dispatch only for
the customers a channel reaches."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from accounts.tests.factories import UserFactory
from notifications import bulk, channels
from notifications.bulk import Notice, notices_prepare, notices_store
from notifications.kinds import Kind
from notifications.models import EmailOutbox, Notification, NotificationPreference
from notifications.services import notice_render

pytestmark = pytest.mark.django_db


def notice(customer, number, amount="€1.00"):
    return Notice(customer=customer, link=f"/billing/invoices/{number}/", dedupe_key=f"invoice:{number}",
                  context={"invoice_number": f"INV <{number}> & Co", "amount": amount, "due_date": "2026-12-01"})


def test_prepare_only_reads_and_store_writes_each_notice_as_the_templates_render_it(customer, monkeypatch):
    rendered = []

    def counting_render(**kwargs):
        rendered.append(kwargs["context"])
        return notice_render(**kwargs)

    monkeypatch.setattr(bulk, "notice_render", counting_render)
    russian = UserFactory().customer
    russian.language = "ru"
    russian.save()
    NotificationPreference.objects.create(customer=russian, kind=Kind.INVOICE_REMINDER, email_enabled=False)
    # The first English notice has a value the stamp does not take (empty): rendered the ordinary way,
    # and the stamp is still proven on the next one and used for the rest.
    notices = [notice(customer, 1, amount=""), *(notice(c, n) for n, c in enumerate([customer, russian] * 3, 2))]
    with CaptureQueriesContext(connection) as queries:
        prepared = notices_prepare(kind=Kind.INVOICE_REMINDER, notices=notices)
    assert queries and all(query["sql"].startswith("SELECT") for query in queries)
    assert not Notification.objects.exists()
    # Per language the stamp and its proof; in English also the notice it does not fit.
    assert len(rendered) == 2 + 3

    assert notices_store(prepared) == len(notices)
    assert notices_store(notices_prepare(kind=Kind.INVOICE_REMINDER, notices=[notice(customer, 2)])) == 0  # dedupe
    for item in notices:
        stored = Notification.objects.get(pk=item.notification_id)
        with translation.override(item.customer.language):
            expected = notice_render(kind=Kind.INVOICE_REMINDER, context=item.context, link=item.link)
        assert (stored.subject, stored.body_text, stored.body_html) == expected
        assert (stored.customer_id, stored.context, stored.link) == (item.customer.pk, item.context, item.link)
    assert "INV &lt;3&gt; &amp; Co" in Notification.objects.get(pk=notices[2].notification_id).body_html
    # The Russian customer switched the kind's mail off.
    assert set(EmailOutbox.objects.values_list("customer_id", flat=True)) == {customer.pk}
    assert EmailOutbox.objects.count() == 4


def test_channels_get_a_notification_only_for_the_customers_they_reach(customer, monkeypatch):
    other = UserFactory().customer
    seen = []

    def channel(notification):
        seen.append((notification.pk, notification.customer_id, notification.subject, notification.context))

    asked = []

    def audience(*, kind, customer_ids):
        asked.append((kind, set(customer_ids)))
        return {other.pk} & customer_ids

    monkeypatch.setattr(channels, "_channels", [])
    monkeypatch.setattr(channels, "_audiences", {})
    channels.register_channel(channel, audience=audience)
    notices = [notice(customer, 1), notice(other, 2), notice(other, 3)]
    notices_store(notices_prepare(kind=Kind.INVOICE_REMINDER, notices=notices))
    assert asked == [(Kind.INVOICE_REMINDER, {customer.pk, other.pk})]  # once per batch
    stored = {n.pk: n for n in Notification.objects.filter(customer=other)}
    assert sorted(seen) == sorted((pk, other.pk, n.subject, n.context) for pk, n in stored.items())

    everyone = []
    channels.register_channel(lambda notification: everyone.append(notification.pk))  # no audience: every customer
    notices_store(notices_prepare(kind=Kind.INVOICE_REMINDER, notices=[notice(customer, 4)]))
    assert everyone == [Notification.objects.get(dedupe_key="invoice:4").pk]
