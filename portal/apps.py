from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    """The top layer: dashboard composition, the staff back office (portal/admin.py) and reports."""

    name = "portal"
    verbose_name = _("Back office")

    def ready(self) -> None:
        from django.contrib import admin

        from .admin_otp import require_staff_second_factor

        require_staff_second_factor(admin.site)
