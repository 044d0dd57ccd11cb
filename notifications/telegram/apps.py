from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TelegramConfig(AppConfig):
    name = "notifications.telegram"
    label = "telegram"
    verbose_name = _("Telegram")

    def ready(self) -> None:
        from notifications.channels import register_channel

        from .services import notification_to_telegram, telegram_audience

        register_channel(notification_to_telegram, audience=telegram_audience)

        from . import personal_data

        personal_data.register()
