from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self):
        from core.topbar import register_topbar_provider

        from . import signals, social  # noqa: F401  (login activity and social-link receivers)
        from .selectors import topbar_policies_pending

        register_topbar_provider("policy_updates", topbar_policies_pending)
