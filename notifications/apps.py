from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        from core.topbar import register_topbar_provider

        from .selectors import topbar_unread_count

        register_topbar_provider("notifications_unread", topbar_unread_count)

        from . import personal_data, receivers  # noqa: F401  (security_event receiver)

        personal_data.register()
