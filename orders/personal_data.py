"""Orders' part of "export my data" and of account erasure (accounts.personal_data): services end first."""
from accounts.models import Customer, User
from accounts.personal_data import ERASURE_REASON

from .models import Order
from .selectors import orders_for
from .services.staff import order_terminate

ENDED = (Order.Status.TERMINATED, Order.Status.CANCELLED)


def export_orders(customer: Customer) -> list[dict]:
    return [{
        "id": order.pk, "plan": order.plan.name, "status": order.status, "period_months": order.period_months,
        "price": order.price, "currency": order.currency, "ip": order.ip or "", "options": order.options,
        "created_at": order.created_at, "activated_at": order.activated_at, "expires_at": order.expires_at,
        "ended_at": order.ended_at,
    } for order in orders_for(customer).select_related("plan").order_by("pk")]


def terminate_services(customer: Customer, actor: User | None) -> None:
    for order in orders_for(customer).exclude(status__in=ENDED).order_by("pk"):
        order_terminate(order=order, actor=actor, reason=str(ERASURE_REASON))


def deletion_open_items(customer: Customer) -> list:
    """Services still running: shown to staff reviewing the deletion; approval terminates them."""
    from django.utils.translation import gettext as _

    from accounts.personal_data import OpenItem

    from .services.common import order_label

    return [OpenItem(label=_("Service %(service)s") % {"service": order_label(order)},
                     value=_("%(status)s: terminated when the deletion is approved") % {"status": order.get_status_display()},
                     blocks=False)
            for order in orders_for(customer).exclude(status__in=ENDED).select_related("plan").order_by("pk")]


def register() -> None:
    from accounts.personal_data import Stage, register_deletion_check, register_erasure_handler, register_exporter

    register_deletion_check(deletion_open_items)

    register_exporter("orders", export_orders)
    register_erasure_handler(terminate_services, stage=Stage.END_SERVICES)
