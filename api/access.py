"""Permission, pagination and per-key rate limit of /api/v1/ (set on api.views.CustomerApiView)."""
from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.throttling import BaseThrottle

from accounts.roles import role_allows
from core import ratelimit

from .models import ApiKey
from .scopes import READ, WRITE, key_allows


class KeyScopePermission(BasePermission):
    """The view declares `api_area`; writes need its write scope, and views that spend money add
    `(Area.BILLING, WRITE)` to `extra_scopes` (as the pages require the billing role to pay)."""

    message = ""

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey) or not request.user.is_authenticated:
            return False
        needed = [(view.api_area, READ if request.method in SAFE_METHODS else getattr(view, "write_access", WRITE))]
        if request.method not in SAFE_METHODS:
            needed += list(getattr(view, "extra_scopes", ()))
        for area, access in needed:
            if not role_allows(request.user, area):
                self.message = _("Your role does not give access to this section.")
                return False
            if not key_allows(key.scopes, area, access):
                self.message = _("This API key lacks the %(scope)s scope.") % {"scope": f"{area}:{access}"}
                return False
        return True


class KeyRateThrottle(BaseThrottle):
    """API_RATE_LIMIT requests per API_RATE_WINDOW seconds per key, counted in Redis."""

    def allow_request(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        self.retry_after = ratelimit.hit("api-key", str(key.pk), limit=settings.API_RATE_LIMIT,
                                         window=settings.API_RATE_WINDOW)
        return self.retry_after is None

    def wait(self):
        return self.retry_after


class NewestFirstCursor(CursorPagination):
    """Opaque cursors (`next`/`previous` URLs), stable under inserts; newest first by id."""

    ordering = "-pk"
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100
