from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def account(request: HttpRequest) -> dict:
    """The signed-in user's colour theme, and the policy versions they have not accepted yet.

    The policy check is one query, made only when a page renders the banner.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"theme": "light", "policy_updates": ()}

    def pending() -> list:
        from .selectors import policies_pending_for

        return list(policies_pending_for(user=user)) if user.customer_id else []

    return {"theme": user.theme, "policy_updates": SimpleLazyObject(pending)}
