import pytest
from django.utils import translation

from notifications import services
from notifications.kinds import CONTEXT_KEYS, Kind
from notifications.models import EmailOutbox

pytestmark = pytest.mark.django_db


def test_notification_and_email_render_in_the_customers_language(customer):
    customer.language = "ru"
    customer.save(update_fields=["language"])  # the email is rendered when sent, from the stored customer
    caller_language = translation.get_language()
    notification = services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, link="/billing/invoices/42/",
                                   context={"invoice_number": "INV-42", "amount": "12,50 €", "due_date": "01.12.2026"})
    assert notification.subject == "Выставлен счёт INV-42 на 12,50 €"
    assert "Мы выставили счёт INV-42 на сумму 12,50 €." in notification.body_text
    _subject, text, html = services.email_content(EmailOutbox.objects.get())
    assert text.startswith("Здравствуйте,")
    assert "Открыть в личном кабинете:" in text and 'lang="ru"' in html
    assert translation.get_language() == caller_language  # the override does not leak into the caller


@pytest.mark.parametrize("kind", [kind for kind in Kind if kind != Kind.NEWSLETTER])
def test_every_kind_is_translated_to_russian(customer, kind):
    context = {key: "X" for key in CONTEXT_KEYS[kind]}
    english = services.notify(customer=customer, kind=kind, context=context)
    customer.language = "ru"
    russian = services.notify(customer=customer, kind=kind, context=context)
    assert russian.subject != english.subject
    english_lines = {line for line in english.body_text.splitlines() if len(line) > 12}
    assert not english_lines & set(russian.body_text.splitlines())


@pytest.mark.parametrize("path", ["notify", "notify_many"])
def test_an_email_sent_later_keeps_the_language_its_notification_was_written_in(customer, path):
    """The inbox text is written once; the email around it is rendered when sent. A customer who switches
    language in between gets the frame in the notification's language, not a mix of both."""
    from notifications.bulk import Notice, notify_many
    from notifications.models import Notification

    customer.language = "ru"
    customer.save(update_fields=["language"])
    context = {"invoice_number": "INV-42", "amount": "12,50 €", "due_date": "01.12.2026"}
    if path == "notify":
        services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, link="/billing/invoices/42/", context=context)
    else:
        notify_many(kind=Kind.INVOICE_ISSUED, notices=[Notice(customer=customer, context=context, link="/billing/invoices/42/")])
    assert Notification.objects.get().language == "ru"
    customer.language = "en"
    customer.save(update_fields=["language"])
    _subject, text, html = services.email_content(EmailOutbox.objects.get())
    assert text.startswith("Здравствуйте,") and 'lang="ru"' in html
    assert "Мы выставили счёт INV-42" in text
