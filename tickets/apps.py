from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = _("Tickets")

    def ready(self):
        from portal.topbar import register_topbar_provider

        from .selectors import tickets_nav

        register_topbar_provider("tickets", tickets_nav)
