import zoneinfo

from django.conf import settings
from django.utils import timezone, translation


def customer_zone(customer) -> zoneinfo.ZoneInfo:
    """The customer's time zone; the provider's (TIME_ZONE) if the name is unknown to this system."""
    try:
        return zoneinfo.ZoneInfo(customer.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


class CustomerLocaleMiddleware:
    """Signed-in customers see the interface in their saved language, and dates in their time zone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        timezone.deactivate()  # the thread may have served another customer: start from TIME_ZONE
        if user is not None and user.is_authenticated and user.customer_id:
            language = user.customer.language
            translation.activate(language)
            request.LANGUAGE_CODE = language
            timezone.activate(customer_zone(user.customer))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class IPAllowlistMiddleware:
    """A customer's IP restriction applies to every request of every user acting for it.

    Runs after AuthenticationMiddleware. A session opened from an allowed address stops working as
    soon as the address (or the list) changes; logging out stays possible.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.customer_id:
            from .client_ip import client_ip
            from .ip_allowlist import ip_permitted

            allowlist = user.customer.ip_allowlist
            if allowlist and not ip_permitted(allowlist, client_ip(request)) and not self._exempt(request):
                return ip_blocked_response(request)
        return self.get_response(request)

    @staticmethod
    def _exempt(request) -> bool:
        from django.urls import reverse

        return request.path in (reverse("accounts:logout"), reverse("accounts:set_language"))


def ip_blocked_response(request):
    """The 403 page, rendered as for an anonymous visitor: nothing of the account leaks to that address."""
    from django.contrib.auth.models import AnonymousUser
    from django.shortcuts import render

    from .client_ip import client_ip

    request.user = AnonymousUser()
    return render(request, "accounts/ip_blocked.html", {"ip": client_ip(request)}, status=403)
