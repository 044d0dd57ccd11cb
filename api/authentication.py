"""`Authorization: Bearer hp_…` authentication for /api/v1/.

The key's user must still be active and act for the key's customer; the customer's IP restriction
and the key's own address list both apply. Failures are one generic 401 (no hint which part failed).
"""
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.client_ip import client_ip
from accounts.ip_allowlist import ip_permitted

from .keys import token_matches, token_prefix
from .models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last-used at most once a minute per key


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        try:
            token = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid API key.")) from None
        prefix = token_prefix(token)
        key = ApiKey.objects.select_related("user", "customer").filter(prefix=prefix).first() if prefix else None
        if key is None or not token_matches(token, key.secret_hash):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        now = timezone.now()
        user = key.user
        if not key.is_usable(now) or not user.is_active or user.customer_id != key.customer_id:
            raise exceptions.AuthenticationFailed(_("This API key is expired or revoked."))
        ip = client_ip(request._request)
        if not ip_permitted(key.customer.ip_allowlist, ip) or not ip_permitted(key.allowed_ips, ip):
            raise exceptions.PermissionDenied(_("Requests from your IP address are not allowed for this account or key."))
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION or key.last_used_ip != ip:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip or None)
            key.last_used_at, key.last_used_ip = now, ip
        user.customer = key.customer  # one object for the request: acting_customer() reads it
        return user, key

    def authenticate_header(self, request) -> str:
        return self.keyword
