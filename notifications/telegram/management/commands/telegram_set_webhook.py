"""Register the bot's webhook (PORTAL_BASE_URL + the webhook path) with TELEGRAM_WEBHOOK_SECRET as its secret token."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from notifications.telegram import bot_api, selectors


class Command(BaseCommand):
    help = "Point the Telegram bot's webhook at this portal (run once after deploying or changing the secret)."

    def handle(self, *args, **options):
        if not selectors.telegram_enabled():
            raise CommandError("Set TELEGRAM_BOT_TOKEN, TELEGRAM_BOT_USERNAME and TELEGRAM_WEBHOOK_SECRET first.")
        url = settings.PORTAL_BASE_URL + reverse("telegram:webhook")
        try:
            bot_api.set_webhook(url=url)
        except bot_api.BotApiError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Webhook set to {url}.")
