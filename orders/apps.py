from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Orders")

    def ready(self) -> None:
        # Billing never imports orders: it calls these when an invoice of the kind is paid.
        from billing.hooks import register_invoice_owner_lock, register_invoice_paid_handler, register_upcoming_charges
        from billing.models import Invoice

        from . import selectors
        from .services import placing, plan_change, renewing

        register_upcoming_charges(selectors.renewals_due_next_month)  # what auto-payment tops up for

        for kind in (Invoice.Kind.ORDER, Invoice.Kind.RENEWAL, Invoice.Kind.PLAN_CHANGE):
            # The order row is locked before its invoice on every path (paying, renewing, upgrading).
            register_invoice_owner_lock(kind, placing.lock_order_of_invoice)
        register_invoice_paid_handler(Invoice.Kind.ORDER, placing.on_order_invoice_paid)
        register_invoice_paid_handler(Invoice.Kind.RENEWAL, renewing.on_renewal_invoice_paid)
        register_invoice_paid_handler(Invoice.Kind.PLAN_CHANGE, plan_change.on_plan_change_invoice_paid)

        from .provisioning.registry import register_builtin_modules

        register_builtin_modules()

        from . import personal_data  # "export my data" / erasure, registered with accounts.personal_data

        personal_data.register()
