from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def account(request: HttpRequest) -> dict:
    """The signed-in user's colour theme, and the policy versions they have not accepted yet.

    The policy check is one query, made only when a page renders the banner.
    """
    from .roles import ROLE_AREAS

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"theme": "light", "policy_updates": (), "user_areas": frozenset()}

    def pending() -> list:
        from .selectors import policies_pending_for

        return list(policies_pending_for(user=user)) if user.customer_id else []

    # The areas the role opens (accounts.roles.Area): navigation shows only links that would not be 403.
    areas = ROLE_AREAS.get(user.role, frozenset()) if user.customer_id else frozenset()
    return {"theme": user.theme, "policy_updates": SimpleLazyObject(pending), "user_areas": areas}
