"""The API's part of "export my data" and of anonymizing an account (accounts.personal_data)."""
from django.utils import timezone

from accounts.models import Customer

from .models import ApiKey, WebhookEndpoint


def export_api_keys(customer: Customer) -> list[dict]:
    # Never the secret: only its public prefix.
    return [{"login": key.user.username, "name": key.name, "prefix": key.prefix, "scopes": ", ".join(key.scopes),
             "allowed_ips": key.allowed_ips, "created_at": key.created_at, "expires_at": key.expires_at,
             "last_used_at": key.last_used_at, "last_used_ip": key.last_used_ip, "revoked_at": key.revoked_at}
            for key in ApiKey.objects.filter(customer=customer).select_related("user").order_by("pk")]


def export_webhooks(customer: Customer) -> list[dict]:
    return [{"url": endpoint.url, "events": ", ".join(endpoint.events), "active": endpoint.is_active,
             "created_at": endpoint.created_at}
            for endpoint in WebhookEndpoint.objects.filter(customer=customer).order_by("pk")]


def erase_api(customer: Customer, actor) -> None:
    """Keys stop working and endpoints (with their delivery log) go: nothing is sent for an erased account."""
    ApiKey.objects.filter(customer=customer, revoked_at__isnull=True).update(revoked_at=timezone.now())
    ApiKey.objects.filter(customer=customer).update(name="", allowed_ips="", last_used_ip=None)
    WebhookEndpoint.objects.filter(customer=customer).delete()


def register() -> None:
    from accounts.personal_data import register_erasure_handler, register_exporter

    register_exporter("api_keys", export_api_keys)
    register_exporter("webhooks", export_webhooks)
    register_erasure_handler(erase_api)
