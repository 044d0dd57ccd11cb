"""The client's IP address, resistant to forged X-Forwarded-For headers.

REMOTE_ADDR is the only thing we know for sure. Only when TRUSTED_PROXY_COUNT proxies sit in front
of the app do we take the address that the outermost trusted proxy saw: the N-th entry from the
right of X-Forwarded-For. Anything a client writes further left is ignored.
"""
from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote
    return forwarded[-hops]


def client_ip_for_axes(request: HttpRequest) -> str:
    return client_ip(request)
