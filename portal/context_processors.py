from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def portal(request: HttpRequest) -> dict:
    """Values every page needs: portal name, the acting customer, and top-bar widgets.

    Apps contribute top-bar data (balance, unread count) through `core.topbar`, so this module
    stays free of domain imports. They are looked up when a template first reads `topbar` (htmx
    partials mostly never do) and come from the per-user cache while nothing changed.
    """
    from accounts.roles import acting_customer_or_none

    from core.topbar import collect_topbar

    customer = acting_customer_or_none(request)
    return {
        "PORTAL_NAME": settings.PORTAL_NAME,
        "current_customer": customer,
        "topbar": SimpleLazyObject(lambda: collect_topbar(request, customer)) if customer else {},
    }
