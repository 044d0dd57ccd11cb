from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PasskeysConfig(AppConfig):
    name = "passkeys"
    verbose_name = _("Passkeys")

    def ready(self) -> None:
        from accounts.roles import Area
        from accounts.views.settings import register_settings_section

        register_settings_section("passkeys", _("Passkeys"), Area.ACCOUNT, "passkeys:settings")

        from . import personal_data

        personal_data.register()

        from accounts.activity_labels import LABELS

        LABELS.update({"passkey_added": _("Passkey added"), "passkey_removed": _("Passkey removed")})
