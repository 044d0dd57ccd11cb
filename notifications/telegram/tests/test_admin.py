import pytest

from accounts.tests.factories import StaffUserFactory
from notifications.telegram.models import TelegramOutbox, TelegramUpdate

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
