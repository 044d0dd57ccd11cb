"""Who acts for which customer, and what their role lets them do.

Every customer-facing view uses `customer_view(area)`; the view then scopes all reads and writes to
`acting_customer(request)`. Adding an area to a role is the only change needed to grant access.
"""
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext as _

from .models import Customer, User


class Area:
    ACCOUNT = "account"  # dashboard, notifications inbox, own profile/password
    BILLING = "billing"  # balance, invoices, payments, expenses, payment methods, documents
    SERVICES = "services"  # orders/services and their actions
    TICKETS = "tickets"
    SETTINGS = "settings"  # customer-wide settings, security, trusted users


ROLE_AREAS: dict[str, frozenset[str]] = {
    User.Role.OWNER: frozenset({Area.ACCOUNT, Area.BILLING, Area.SERVICES, Area.TICKETS, Area.SETTINGS}),
    User.Role.FINANCE: frozenset({Area.ACCOUNT, Area.BILLING}),
    User.Role.TECHNICAL: frozenset({Area.ACCOUNT, Area.SERVICES, Area.TICKETS}),
}


def role_allows(user: User, area: str) -> bool:
    return user.is_authenticated and user.customer_id is not None and area in ROLE_AREAS.get(user.role, frozenset())


def acting_customer_or_none(request: HttpRequest) -> Customer | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return user.customer


def acting_customer(request: HttpRequest) -> Customer:
    customer = acting_customer_or_none(request)
    if customer is None:
        raise PermissionDenied(_("This page is for customer accounts. Staff work in the admin site."))
    return customer


def customer_view(area: str = Area.ACCOUNT) -> Callable:
    """Login required, a customer account required, and the user's role must include `area`."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            acting_customer(request)
            if not role_allows(request.user, area):
                raise PermissionDenied(_("Your role does not give access to this section."))
            return view(request, *args, **kwargs)

        wrapper.customer_area = area
        return wrapper

    return decorator
