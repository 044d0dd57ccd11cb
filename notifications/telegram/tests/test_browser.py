import re

import pytest
import requests
from playwright.sync_api import expect

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from notifications.telegram.models import TelegramLink

from .factories import WEBHOOK_SECRET, link_chat, update

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_link_telegram_shows_the_deep_link_then_the_linked_chat(page, login, screenshot, live_server, bot_api):
    owner = UserFactory()
    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/notifications/")
    page.get_by_test_id("telegram-settings-link").click()
    expect(page.get_by_role("heading", name="Telegram", exact=True)).to_be_visible()
    page.get_by_test_id("telegram-link").click()  # htmx POST swaps the card
    deep_link = page.get_by_test_id("telegram-deep-link")
    expect(deep_link).to_be_visible()
    href = deep_link.get_attribute("href")
    assert re.fullmatch(r"https://t\.me/PortalTestBot\?start=[A-Za-z0-9_-]{32}", href)
    screenshot("telegram-deep-link")

    # The customer presses Start in Telegram: Telegram posts the update to our webhook.
    token = href.split("start=")[1]
    response = requests.post(f"{live_server.url}/notifications/telegram/webhook/",
                             json=update(1, chat_id=555, text=f"/start {token}", username="alice_admin"),
                             headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}, timeout=10)
    assert response.json()["outcome"] == "linked"
    page.get_by_role("link", name=re.compile("refresh")).click()
    expect(page.get_by_test_id("telegram-link-card")).to_contain_text("@alice_admin")
    switch = page.locator("#tg_payment_received")
    expect(switch).not_to_be_checked()
    switch.check()
    page.get_by_test_id("save-telegram-kinds").click()
    expect(page.locator(".alert-success")).to_be_visible()
    assert "payment_received" in TelegramLink.objects.get(user=owner).kinds
    screenshot("telegram-linked")


def test_linked_page_in_russian_on_a_phone(page, login, screenshot, bot_api):
    owner = UserFactory()
    owner.customer.language = "ru"
    owner.customer.save()
    link_chat(owner, chat_id=777)
    page.set_viewport_size({"width": 390, "height": 844})
    login(owner.username, DEFAULT_PASSWORD)
    page.goto("/notifications/telegram/")
    expect(page.get_by_test_id("telegram-link-card")).to_contain_text("Привязан")
    expect(page.get_by_test_id("telegram-kinds")).to_contain_text("Уведомления в Telegram")
    screenshot("telegram-linked-ru-phone")
