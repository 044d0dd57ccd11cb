"""Login (password, then a second factor before any session exists), re-authentication before
security changes, and password reset."""
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import user_login_failed
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from core.ratelimit import limit_posts

from .. import selectors
from ..client_ip import client_ip
from ..forms import LoginForm, OTPLoginForm, OutboxPasswordResetForm, ReauthForm
from ..models import User
from ..services.activity import login_failure_record
from ..services.totp import otp_match
from ..session_policy import mark_authenticated

OTP_PENDING = "otp_pending_login"
OTP_PENDING_MAX_AGE = 300  # seconds between the password and the code


class LoginView(auth_views.LoginView):
    """Password first; users with a confirmed OTP device then pass `login_verify` before a session exists."""

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "social_providers": selectors.social_providers(self.request)}

    def post(self, request, *args, **kwargs):
        if selectors.login_ip_blocked(client_ip(request)):
            return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        user = form.get_user()
        if selectors.otp_enabled(user):
            self.request.session[OTP_PENDING] = {
                "user": user.pk, "backend": user.backend, "next": self.get_success_url(), "at": time.time(),
                "attempts": 0,
            }
            return redirect("accounts:login_verify")
        return super().form_valid(form)

    def form_invalid(self, form):
        if form.has_error(NON_FIELD_ERRORS, "ip_restricted"):
            login_failure_record(username=form.cleaned_data.get("username", ""), ip=client_ip(self.request),
                                 reason="ip_restricted")
        return super().form_invalid(form)


def login_verify(request: HttpRequest) -> HttpResponse:
    from axes.handlers.proxy import AxesProxyHandler
    from django_otp import login as otp_login

    pending = request.session.get(OTP_PENDING)
    if not pending or time.time() - pending["at"] > OTP_PENDING_MAX_AGE:
        request.session.pop(OTP_PENDING, None)
        messages.info(request, _("Please log in again."))
        return redirect("accounts:login")
    user = User.objects.select_related("customer").filter(pk=pending["user"], is_active=True).first()
    if user is None:
        request.session.pop(OTP_PENDING, None)
        return redirect("accounts:login")
    credentials = {"username": user.username}
    if not AxesProxyHandler.is_allowed(request, credentials) or selectors.login_ip_blocked(client_ip(request)):
        request.session.pop(OTP_PENDING, None)
        return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=429)
    form = OTPLoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = otp_match(user=user, token=form.cleaned_data["token"])
        if device is not None:
            del request.session[OTP_PENDING]
            user.backend = pending["backend"]
            auth_login(request, user)
            otp_login(request, device)
            if device.persistent_id.startswith("otp_static"):
                messages.warning(request, _("You used a recovery code; it cannot be used again."))
            next_url = pending["next"]
            if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
                next_url = reverse(settings.LOGIN_REDIRECT_URL)
            return redirect(next_url)
        # A wrong code counts towards the django-axes lockout like a wrong password.
        user_login_failed.send(sender=__name__, credentials={**credentials, "second_factor": True}, request=request)
        pending["attempts"] += 1
        if pending["attempts"] >= settings.OTP_LOGIN_MAX_ATTEMPTS:
            request.session.pop(OTP_PENDING, None)
            messages.error(request, _("Too many wrong codes. Please log in again."))
            return redirect("accounts:login")
        request.session[OTP_PENDING] = pending
        form.add_error("token", _("The code is not correct."))
    return render(request, "accounts/login_verify.html", {"form": form, "pending_user": user})


@login_required
@require_http_methods(["GET", "POST"])
def reauth(request: HttpRequest) -> HttpResponse:
    """Confirm the password (or a 2FA code) before a security-sensitive change
    (accounts.session_policy.recent_auth_required); wrong answers count towards the lockout."""
    form = ReauthForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            mark_authenticated(request)
            next_url = request.GET.get("next", "")
            if not next_url.startswith("/") or not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
                next_url = "/"
            return HttpResponseRedirect(next_url)
        user_login_failed.send(sender=__name__, credentials={"username": request.user.username}, request=request)
    return render(request, "accounts/reauth.html", {"form": form})


@method_decorator(limit_posts("password_reset", ip=client_ip, account=lambda request: request.POST.get("email", "")),
                  name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    form_class = OutboxPasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    html_email_template_name = "accounts/email/password_reset.html"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")
