from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def account(request: HttpRequest) -> dict:
    """The signed-in user's colour theme, and the policy versions they have not accepted yet.

    The pending versions are a top-bar value (core.topbar: cached per user), looked up only when a
    page renders the banner.
    """
    from .roles import ROLE_AREAS

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"theme": "light", "policy_updates": (), "user_areas": frozenset()}

    def pending() -> list:
        from core.topbar import collect_topbar

        from .roles import acting_customer_or_none

        customer = acting_customer_or_none(request) if user.customer_id else None
        return collect_topbar(request, customer)["policy_updates"] if customer else []

    # The areas the role opens (accounts.roles.Area): navigation shows only links that would not be 403.
    areas = ROLE_AREAS.get(user.role, frozenset()) if user.customer_id else frozenset()
    return {"theme": user.theme, "policy_updates": SimpleLazyObject(pending), "user_areas": areas}
