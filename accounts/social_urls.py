"""django-allauth URLs for the social part only (provider login and callback), under /accounts/social/.

allauth reverses a few un-namespaced names of its own; they point at our pages here.
"""
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import include, path
from django.utils.translation import gettext as _

from allauth.socialaccount.providers.facebook.urls import urlpatterns as facebook_urls
from allauth.socialaccount.providers.google.urls import urlpatterns as google_urls

from . import views


def login_cancelled(request):
    messages.info(request, _("Social login was cancelled."))
    return redirect("accounts:settings_security" if request.user.is_authenticated else "accounts:login")


def login_error(request):
    messages.error(request, _("Social login failed. Please try again or log in with your password."))
    return redirect("accounts:login")


def connections(request):
    return redirect("accounts:settings_security")


urlpatterns = [
    path("", include(google_urls)),
    path("", include(facebook_urls)),
    path("login/cancelled/", login_cancelled, name="socialaccount_login_cancelled"),
    path("login/error/", login_error, name="socialaccount_login_error"),
    path("signup/", login_error, name="socialaccount_signup"),
    path("connections/", connections, name="socialaccount_connections"),
    path("login/", views.LoginView.as_view(), name="account_login"),
    path("signup-closed/", views.register, name="account_signup"),
    path("inactive/", login_error, name="account_inactive"),
]
