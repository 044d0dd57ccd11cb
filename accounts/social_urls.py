"""django-allauth URLs for the social part only (provider login and callback), under /accounts/social/.

allauth reverses a few un-namespaced names of its own; they point at our pages here.
"""
from functools import wraps

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import include, path
from django.utils.translation import gettext as _

from allauth.socialaccount.providers.facebook.provider import FacebookProvider
from allauth.socialaccount.providers.google.provider import GoogleProvider
from allauth.socialaccount.providers.oauth2.urls import default_urlpatterns

from . import selectors
from .views.login_2fa import LoginView
from .views.registration import register


def _only_when_configured(provider_id: str, view):
    """A provider without credentials is switched off: its URLs are 404, not allauth's 500."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if provider_id not in {provider.id for provider in selectors.social_providers(request)}:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def _provider_urls(provider_class) -> list:
    """Login and callback only: allauth's csrf-exempt `<provider>/login/token/` endpoints are not used."""
    (prefix,) = default_urlpatterns(provider_class)
    patterns = [path(str(pattern.pattern), _only_when_configured(provider_class.id, pattern.callback), name=pattern.name)
                for pattern in prefix.url_patterns]
    return [path(str(prefix.pattern), include(patterns))]


def login_cancelled(request):
    messages.info(request, _("Social login was cancelled."))
    return redirect("accounts:settings_security" if request.user.is_authenticated else "accounts:login")


def login_error(request):
    messages.error(request, _("Social login failed. Please try again or log in with your password."))
    return redirect("accounts:login")


def connections(request):
    return redirect("accounts:settings_security")


urlpatterns = [
    *_provider_urls(GoogleProvider),
    *_provider_urls(FacebookProvider),
    path("login/cancelled/", login_cancelled, name="socialaccount_login_cancelled"),
    path("login/error/", login_error, name="socialaccount_login_error"),
    path("signup/", login_error, name="socialaccount_signup"),
    path("connections/", connections, name="socialaccount_connections"),
    path("login/", LoginView.as_view(), name="account_login"),
    path("signup-closed/", register, name="account_signup"),
    path("inactive/", login_error, name="account_inactive"),
]
