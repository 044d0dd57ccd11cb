from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = _("Customer API")

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the API key scheme with drf-spectacular
        from accounts.views.settings import register_settings_section
        from accounts.roles import Area

        # Every customer user may hold keys: a key can do at most what its user's role allows.
        register_settings_section("api_keys", _("API keys"), Area.ACCOUNT, "api:settings_keys")
        register_settings_section("webhooks", _("Webhooks"), Area.SETTINGS, "api:settings_webhooks")

        from notifications.channels import register_channel

        from .webhooks import webhook_audience, webhook_channel

        register_channel(webhook_channel, audience=webhook_audience)

        from . import personal_data

        personal_data.register()

        from accounts.activity_labels import LABELS

        LABELS.update({
            "api_request": _("Change made with an API key"),
            "api_key_created": _("API key created"),
            "api_key_revoked": _("API key revoked"),
            "webhook_created": _("Webhook endpoint added"),
            "webhook_deleted": _("Webhook endpoint deleted"),
            "webhook_disabled": _("Webhook endpoint disabled after failures"),
        })
