"""django-allauth, used for the social part only: our own views stay the login and registration flow.

A provider callback ends in `SocialAccountAdapter.pre_social_login`, where the same rules as the
password login apply before any session exists: an unknown social account does not create an
account, the customer's IP allowlist is checked, and users with two-factor authentication continue
to our `login_verify` step instead of being logged in.
"""
import time

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthProcess
from allauth.socialaccount.signals import social_account_added
from django.contrib import messages
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from .client_ip import client_ip

PASSWORD_BACKEND = "accounts.backends.UsernameOrEmailBackend"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        return False  # accounts are created by our registration form only

    def login(self, request, user):
        # Sessions must name a backend whose get_user() knows our users (not axes' standalone one).
        user.backend = PASSWORD_BACKEND
        super().login(request, user)

    def get_login_redirect_url(self, request):
        return reverse("dashboard")


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return False

    def get_connect_redirect_url(self, request, socialaccount):
        return reverse("accounts:settings_security") + "#social-login"

    def pre_social_login(self, request, sociallogin):
        from .ip_allowlist import ip_permitted
        from .selectors import otp_enabled
        from .services.activity import login_failure_record
        from .views.login_2fa import OTP_PENDING

        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            return
        if not sociallogin.is_existing:
            messages.error(request, _("No account is linked to this %(provider)s profile. Log in with your password "
                                      "and link it in Settings → Security.") % {
                "provider": sociallogin.account.get_provider().name})
            raise ImmediateHttpResponse(redirect("accounts:login"))
        user = sociallogin.user
        if not user.is_active:
            messages.error(request, _("This account is disabled."))
            raise ImmediateHttpResponse(redirect("accounts:login"))
        ip = client_ip(request)
        if user.customer_id and not ip_permitted(user.customer.ip_allowlist, ip):
            login_failure_record(username=user.username, ip=ip, reason="ip_restricted")
            messages.error(request, _("Access to this account from your IP address %(ip)s is restricted by the "
                                      "account owner.") % {"ip": ip})
            raise ImmediateHttpResponse(redirect("accounts:login"))
        if otp_enabled(user):
            request.session[OTP_PENDING] = {
                "user": user.pk, "backend": PASSWORD_BACKEND, "next": sociallogin.state.get("next") or "",
                "at": time.time(), "attempts": 0,
            }
            raise ImmediateHttpResponse(redirect("accounts:login_verify"))


@receiver(social_account_added, dispatch_uid="accounts.social_account_linked")
def social_account_linked(sender, request, sociallogin, **kwargs):
    from .services.social import social_account_link_record

    social_account_link_record(user=sociallogin.user, provider=sociallogin.account.get_provider().name,
                               ip=client_ip(request))
