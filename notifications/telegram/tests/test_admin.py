import pytest

from accounts.tests.factories import StaffUserFactory, UserFactory
from notifications.kinds import Kind
from notifications.services import notify
from notifications.telegram.models import TelegramLink, TelegramOutbox, TelegramUpdate

from .factories import link_chat, post_update, update

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(StaffUserFactory())
    return client


def test_staff_see_links_outbox_and_updates_and_retry_failed_messages(admin_client, owner, bot_api):
    link_chat(owner, chat_id=111)
    post_update(admin_client, update(1, chat_id=999, text="hello"))
    failed = TelegramOutbox.objects.create(chat_id=111, text="x", status="failed", attempts=8, last_error="boom")
    for url in ("/admin/telegram/telegramlink/", "/admin/telegram/telegramoutbox/", "/admin/telegram/telegramupdate/",
                f"/admin/telegram/telegramoutbox/{failed.pk}/change/",
                f"/admin/telegram/telegramupdate/{TelegramUpdate.objects.get().pk}/change/"):
        assert admin_client.get(url).status_code == 200, url
    response = admin_client.post("/admin/telegram/telegramoutbox/", {
        "action": "retry_failed", "_selected_action": [failed.pk]}, follow=True)
    assert "1 message queued again." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
    assert admin_client.get("/admin/telegram/telegramlink/add/").status_code == 403


def test_export_and_erasure_cover_telegram(client, owner, bot_api):
    from accounts.personal_data import erasure_handlers, exporters
    from notifications.telegram.models import TelegramLink, TelegramLinkToken
    from notifications.telegram.personal_data import erase_telegram
    from notifications.telegram.services import link_token_create

    other = link_chat(UserFactory(), chat_id=222)
    link_chat(owner, chat_id=111)
    link_token_create(user=owner)
    post_update(client, update(1, chat_id=111, text="hello"))
    (row,) = exporters()["telegram"](owner.customer)
    assert (row["login"], row["chat_id"], row["telegram_username"]) == (owner.username, 111, "u111")
    assert erase_telegram in erasure_handlers()

    erase_telegram(owner.customer, None)
    assert not TelegramLink.objects.filter(customer=owner.customer).exists() and not TelegramLinkToken.objects.exists()
    assert not TelegramOutbox.objects.filter(chat_id=111).exists() and not TelegramUpdate.objects.exists()
    assert list(TelegramLink.objects.all()) == [other]


def test_erasure_also_forgets_chats_linked_earlier_but_not_a_chat_now_someone_elses(client, owner, bot_api):
    from notifications.telegram.services import customer_telegram_erase, link_delete

    link_chat(owner, chat_id=111)
    ticket_reply_notice(owner.customer)
    post_update(client, update(1, chat_id=111, text="my address is 1 Main St"))
    link_delete(user=owner)  # unlinked earlier: what the bot wrote there and the chat's updates are still the owner's
    link_chat(owner, chat_id=333)
    ticket_reply_notice(owner.customer)
    TelegramLink.objects.filter(user=owner).delete()
    link_chat(UserFactory(), chat_id=333)  # the chat moved to another customer's login (/start with their token)
    post_update(client, update(2, chat_id=333, text="the new customer's message"))
    stranger = link_chat(UserFactory(), chat_id=222)
    post_update(client, update(3, chat_id=222, text="stranger's message"))
    assert set(TelegramOutbox.objects.filter(customer=owner.customer).values_list("chat_id", flat=True)) == {111, 333}

    customer_telegram_erase(customer=owner.customer)

    assert set(TelegramUpdate.objects.values_list("update_id", flat=True)) == {2, 3}
    assert not TelegramOutbox.objects.filter(customer=owner.customer).exists()
    assert set(TelegramLink.objects.values_list("chat_id", flat=True)) == {222, 333}
    assert stranger.pk in TelegramLink.objects.values_list("pk", flat=True)


def ticket_reply_notice(customer):
    notify(customer=customer, kind=Kind.TICKET_REPLY, context={
        "ticket_id": 10042, "ticket_subject": "Disk full", "author": "Maria", "excerpt": "Cleaned up.",
        "category": "support"})
