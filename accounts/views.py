from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from . import services
from .forms import LoginForm, RegistrationForm
from .roles import Area, acting_customer_or_none, customer_view


def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.customer_register(
            username=data["username"], email=data["email"], password=data["password1"],
            first_name=data["first_name"], last_name=data["last_name"],
            language=request.LANGUAGE_CODE if request.LANGUAGE_CODE in ("en", "ru") else "en",
        )
        return render(request, "accounts/register_done.html", {"email": data["email"]})
    return render(request, "accounts/register.html", {"form": form})


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirm button (no state change on GET); POST verifies."""
    if request.method == "POST":
        try:
            services.email_verify(token=token)
        except ValidationError as error:
            return render(request, "accounts/verify_email.html", {"error": error.messages[0]}, status=400)
        messages.success(request, _("Your email address is verified."))
        return redirect("dashboard" if request.user.is_authenticated else "accounts:login")
    return render(request, "accounts/verify_email.html", {"token": token})


@require_POST
@customer_view(Area.ACCOUNT)
def resend_verification(request: HttpRequest) -> HttpResponse:
    if request.user.email_verified:
        messages.info(request, _("Your email address is already verified."))
    else:
        services.email_verification_send(user=request.user)
        messages.success(request, _("We sent a new verification link to %(email)s.") % {"email": request.user.email})
    return redirect(request.POST.get("next") or "dashboard")


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    response = redirect(next_url)
    try:
        customer = acting_customer_or_none(request)
        if customer is not None:
            services.customer_set_language(customer=customer, language=language)
    except ValidationError:
        messages.error(request, _("Unsupported language."))
        return response
    if language in ("en", "ru"):
        from django.conf import settings

        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600, samesite="Lax")
    return response


@customer_view(Area.ACCOUNT)
def account_settings(request: HttpRequest) -> HttpResponse:
    from .selectors import payment_blockers

    customer = request.user.customer
    return render(request, "accounts/settings.html", {
        "customer": customer,
        "blockers": payment_blockers(customer) if request.user.role == request.user.Role.OWNER else [],
    })


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:settings")

    def form_valid(self, form):
        messages.success(self.request, _("Your password has been changed."))
        return super().form_valid(form)


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    html_email_template_name = "accounts/email/password_reset.html"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")
