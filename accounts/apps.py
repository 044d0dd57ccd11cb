from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self):
        from core.topbar import register_topbar_provider

        # Receivers: login activity, social links, and the session clock (connected before the first
        # login, not when the middleware module happens to be imported by the first request).
        from . import session_policy, signals, social  # noqa: F401
        from .selectors import topbar_policies_pending

        register_topbar_provider("policy_updates", topbar_policies_pending)
