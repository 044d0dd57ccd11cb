from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = _("Tickets")

    def ready(self):
        from core.topbar import register_topbar_provider

        from .selectors import tickets_nav

        register_topbar_provider("tickets", tickets_nav)

        from notifications.telegram.replies import register_reply_handler

        from .telegram_replies import ticket_reply_from_telegram

        register_reply_handler(ticket_reply_from_telegram)

        from . import personal_data  # "export my data" / erasure, registered with accounts.personal_data

        personal_data.register()
