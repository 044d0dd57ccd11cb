"""Sign-up, email verification, and the language switch."""
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from core.ratelimit import limit_posts

from .. import selectors
from ..client_ip import client_ip
from ..forms import RegistrationForm
from ..roles import Area, acting_customer_or_none, customer_view, role_allows
from ..services.policies import policies_accept
from ..services.registration import customer_register, customer_set_language, email_verification_send, email_verify
from ._posts import safe_next_redirect


@limit_posts("register", ip=client_ip, account=lambda request: request.POST.get("email", ""))
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = RegistrationForm(request.POST or None, policies=selectors.policies_current())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        owner = customer_register(
            username=data["username"], email=data["email"], password=data["password1"],
            first_name=data["first_name"], last_name=data["last_name"],
            language=request.LANGUAGE_CODE if request.LANGUAGE_CODE in ("en", "ru") else "en",
        )
        if data.get("policy_ids"):
            # The versions shown on the form: the new user is not asked to "review a new version" of them.
            try:
                policies_accept(user=owner, policy_ids=data["policy_ids"], ip=client_ip(request))
            except ValidationError:
                pass  # published a moment ago: the review banner asks for that version after login
        return render(request, "accounts/register_done.html", {"email": data["email"]})
    return render(request, "accounts/register.html", {"form": form})


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirm button (no state change on GET); POST verifies."""
    if request.method == "POST":
        try:
            email_verify(token=token)
        except ValidationError as error:
            return render(request, "accounts/verify_email.html", {"error": error.messages[0]}, status=400)
        messages.success(request, _("Your email address is verified."))
        return redirect("dashboard" if request.user.is_authenticated else "accounts:login")
    return render(request, "accounts/verify_email.html", {"token": token})


@require_POST
@customer_view(Area.ACCOUNT)
@limit_posts("verification_resend", ip=client_ip, account=lambda request: str(request.user.pk))
def resend_verification(request: HttpRequest) -> HttpResponse:
    if request.user.email_verified:
        messages.info(request, _("Your email address is already verified."))
    else:
        email_verification_send(user=request.user)
        messages.success(request, _("We sent a new verification link to %(email)s.") % {"email": request.user.email})
    return safe_next_redirect(request)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    language = request.POST.get("language", "")
    response = safe_next_redirect(request)
    try:
        customer = acting_customer_or_none(request)
        if customer is not None:
            if not role_allows(request.user, Area.SETTINGS):  # the language is the whole account's
                messages.error(request, _("Only the account owner can change the account language."))
                return response
            customer_set_language(customer=customer, language=language)
    except ValidationError:
        messages.error(request, _("Unsupported language."))
        return response
    if language in ("en", "ru"):
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600, samesite="Lax")
    return response
