from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatewaysConfig(AppConfig):
    name = "billing.gateways"
    label = "billing_gateways"
    verbose_name = _("Payment gateways")

    def ready(self) -> None:
        from billing.hooks import (
            register_currency_change_handler, register_invoice_email_context, register_invoice_payment_panel,
            register_payment_method,
        )

        from .registry import all_gateways, register_builtin_gateways
        from .services import card_auto_top_up_currency_change, pay_link_email_context
        from .views import invoice_payment_panel

        register_builtin_gateways()
        for gateway in all_gateways():
            register_payment_method(gateway.code, gateway.name)
        register_invoice_payment_panel(invoice_payment_panel)
        register_invoice_email_context(pay_link_email_context)
        register_currency_change_handler(card_auto_top_up_currency_change)

        from billing.hooks import register_payments_in_progress

        from .selectors import payments_in_progress

        register_payments_in_progress(payments_in_progress)

        from billing.audit import register_check

        from .audit import attempt_mismatches

        register_check("gateways", attempt_mismatches)

        from . import personal_data  # "export my data" / erasure, registered with accounts.personal_data

        personal_data.register()
