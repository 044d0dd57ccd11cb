"""Staff enrol their own second factor (the admin login then asks for it)."""
from base64 import b32encode

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from core.forms import apply_errors

from .. import selectors
from ..client_ip import client_ip
from ..forms import OTPTokenForm
from ..services.totp import totp_setup_confirm, totp_setup_start
from .security import totp_qr_svg


@staff_member_required
@require_http_methods(["GET", "POST"])
def staff_two_factor(request: HttpRequest) -> HttpResponse:
    """A staff login enrols TOTP here (customers use the security settings); the admin login then asks
    for the code (accounts.forms.StaffLoginForm). Turning it off again is another staff member's audited
    admin action, so a stolen session cannot remove it."""
    from django.contrib import admin
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = request.user
    form = OTPTokenForm(request.POST if request.POST.get("step") == "confirm" else None)
    if request.method == "POST":
        try:
            if request.POST.get("step") == "start":
                totp_setup_start(user=user)
                return redirect("accounts:staff_two_factor")
            if form.is_valid():
                request.session["recovery_codes_once"] = totp_setup_confirm(
                    user=user, token=form.cleaned_data["token"], ip=client_ip(request))
                messages.success(request, _("Two-factor authentication is on. Save your recovery codes now."))
                return redirect("accounts:staff_two_factor")
        except ValidationError as error:
            if form.is_bound:
                apply_errors(form, error)
            else:
                messages.error(request, error.messages[0])
    setup = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return render(request, "accounts/staff_two_factor.html", {
        **admin.site.each_context(request), "title": _("Two-factor authentication"),
        "otp_enabled": selectors.otp_enabled(user), "otp_setup": setup, "form": form,
        "otp_setup_qr": mark_safe(totp_qr_svg(setup.config_url)) if setup else "",  # our own SVG, no user input
        "otp_setup_secret": b32encode(setup.bin_key).decode() if setup else "",
        "recovery_codes": request.session.pop("recovery_codes_once", None),
        "recovery_left": StaticToken.objects.filter(device__user=user).count(),
    })
