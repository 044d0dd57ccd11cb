"""Reads for API keys, scoped to the customer (and to the user unless they manage the account)."""
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from accounts.roles import Area, role_allows

from .models import ApiKey


def api_keys_visible_to(user: User) -> QuerySet[ApiKey]:
    """Own keys; users who manage the account (Settings area) see and may revoke everyone's."""
    keys = ApiKey.objects.filter(customer_id=user.customer_id).select_related("user")
    if not role_allows(user, Area.SETTINGS):
        keys = keys.filter(user=user)
    return keys.order_by("-created_at", "-pk")


def api_key_get(*, user: User, key_id: int) -> ApiKey:
    return get_object_or_404(api_keys_visible_to(user), pk=key_id)


def webhook_endpoints_for(customer) -> QuerySet:
    from .models import WebhookEndpoint

    return WebhookEndpoint.objects.filter(customer=customer).order_by("-created_at", "-pk")


def webhook_endpoint_get(*, customer, endpoint_id: int):
    return get_object_or_404(webhook_endpoints_for(customer), pk=endpoint_id)


def webhook_deliveries_for(customer, limit: int = 50) -> list:
    from .models import WebhookDelivery

    return list(WebhookDelivery.objects.filter(endpoint__customer=customer).select_related("endpoint")
                .order_by("-created_at", "-pk")[:limit])


def webhook_delivery_get(*, customer, delivery_id: int):
    from .models import WebhookDelivery

    return get_object_or_404(WebhookDelivery, pk=delivery_id, endpoint__customer=customer)
