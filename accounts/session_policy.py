"""Session lifetime and recent authentication.

- Idle timeout (SESSION_IDLE_TIMEOUT seconds without a request) and absolute lifetime
  (SESSION_ABSOLUTE_LIFETIME seconds since the password/2FA login) end the session; 0 turns either off.
- `recent_auth_required` guards security-sensitive changes (IP allowlist, trusted users): the login
  (or a re-authentication at /accounts/reauth/) must be younger than SESSION_REAUTH_MAX_AGE.
"""
import time
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

AUTHENTICATED_AT = "auth_at"  # when the password (and second factor) were last given
LAST_SEEN = "last_seen"
LAST_SEEN_RESOLUTION = 60  # seconds: the session row is rewritten at most once a minute for this


@receiver(user_logged_in, dispatch_uid="accounts.session_clock_started")
def session_clock_started(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        mark_authenticated(request)


def mark_authenticated(request) -> None:
    now = int(time.time())
    request.session[AUTHENTICATED_AT] = now
    request.session[LAST_SEEN] = now


def _expired(session, now: int) -> bool:
    idle, absolute = settings.SESSION_IDLE_TIMEOUT, settings.SESSION_ABSOLUTE_LIFETIME
    started, seen = session.get(AUTHENTICATED_AT), session.get(LAST_SEEN)
    return bool((absolute and started is not None and now - started > absolute)
                or (idle and seen is not None and now - seen > idle))


class SessionLifetimeMiddleware:
    """After AuthenticationMiddleware: ends idle or too old sessions (the next page asks to log in)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = int(time.time())
            session = request.session
            if _expired(session, now):
                logout(request)
                messages.info(request, _("Your session has expired. Please log in again."))
            else:
                if AUTHENTICATED_AT not in session:  # a session from before this policy: its clock starts now
                    mark_authenticated(request)
                elif now - session.get(LAST_SEEN, 0) >= LAST_SEEN_RESOLUTION:
                    session[LAST_SEEN] = now
        return self.get_response(request)


def recently_authenticated(request) -> bool:
    max_age = settings.SESSION_REAUTH_MAX_AGE
    started = request.session.get(AUTHENTICATED_AT)
    return not max_age or (started is not None and time.time() - started <= max_age)


def recent_auth_required(back: str):
    """A view that changes security settings: without a recent login, confirm the password (or a 2FA
    code) first, then return to `back` (a URL name) to submit again."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not recently_authenticated(request):
                messages.info(request, _("Please confirm it is you before changing security settings."))
                return redirect(f"{reverse('accounts:reauth')}?{urlencode({'next': reverse(back)})}")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
