from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self):
        from core.topbar import register_topbar_provider

        from .selectors import topbar_balance

        register_topbar_provider("balance", topbar_balance)

        from . import personal_data  # "export my data" / erasure, registered with accounts.personal_data

        personal_data.register()
