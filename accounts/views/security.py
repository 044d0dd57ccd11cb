"""Settings → Security: two-factor setup, code word, IP restriction, login options (linked social
logins are listed here too; unlinking is in avatar_theme_social)."""
import io
from base64 import b32encode

from django.http import HttpRequest, HttpResponse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from core.form_renderer import plain_widgets

from .. import selectors
from ..client_ip import client_ip
from ..forms import CodeWordForm, IPAllowlistForm, LoginOptionsForm, OTPTokenForm, TOTPDisableForm
from ..roles import Area, acting_customer, customer_view, role_allows
from ..services.security import customer_set_code_word, customer_set_ip_allowlist, customer_update_login_options
from ..services.totp import totp_disable, totp_setup_confirm, totp_setup_start
from ..session_policy import recent_auth_required
from ._posts import settings_form_post
from .settings import settings_render


def totp_qr_svg(data: str) -> str:
    """The authenticator app's setup QR code as inline SVG (drawn here, no user input in it)."""
    import qrcode
    import qrcode.image.svg

    buffer = io.BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2).save(buffer)
    svg = buffer.getvalue().decode()
    return svg[svg.index("<svg"):]  # drop the XML declaration to inline it


def security_page(request: HttpRequest, **forms) -> HttpResponse:
    """The Security section; a card whose POST failed passes its bound form (e.g. `ip_form=form`)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, customer = request.user, acting_customer(request)
    overview = selectors.security_overview(user=user)  # one query; the device itself only while setting up
    setup = TOTPDevice.objects.get(pk=overview["setup_id"]) if overview["setup_id"] is not None else None
    context = {
        "otp_enabled": overview["otp_enabled"],
        "otp_setup": setup,
        "otp_setup_qr": mark_safe(totp_qr_svg(setup.config_url)) if setup else "",  # our own SVG, no user input
        "otp_setup_secret": b32encode(setup.bin_key).decode() if setup else "",
        "otp_confirm_form": forms.get("otp_confirm_form") or OTPTokenForm(renderer=plain_widgets),
        "otp_disable_form": forms.get("otp_disable_form") or TOTPDisableForm(),
        "recovery_codes": request.session.pop("recovery_codes_once", None),
        "recovery_left": overview["recovery_left"],
        "previous_login": selectors.previous_login(user=user) if customer.show_last_login else None,
        "social_providers": selectors.social_providers(request),
        "social_accounts": (social_accounts := selectors.social_accounts_for(user=user)),
        "linked_ids": {account.provider for account in social_accounts},
        "has_password": user.has_usable_password(),
    }
    if role_allows(user, Area.SETTINGS):
        context.update({
            "code_word_form": forms.get("code_word_form") or CodeWordForm(),
            "ip_form": forms.get("ip_form") or IPAllowlistForm(initial={"ip_allowlist": customer.ip_allowlist}),
            "login_options_form": forms.get("login_options_form") or LoginOptionsForm(initial={
                "show_last_login": customer.show_last_login, "login_alerts": customer.login_alerts}),
            "current_ip": client_ip(request),
        })
    return settings_render(request, "security", "accounts/settings/security.html", context)


@customer_view(Area.ACCOUNT)
def settings_security(request: HttpRequest) -> HttpResponse:
    return security_page(request)


@customer_view(Area.SETTINGS)
@require_POST
def settings_code_word(request: HttpRequest) -> HttpResponse:
    form = CodeWordForm(request.POST)
    return settings_form_post(
        request, form,
        save=lambda: customer_set_code_word(customer=acting_customer(request), actor=request.user,
                                            code_word=form.cleaned_data["code_word"], ip=client_ip(request)),
        success=_("Code word saved. It cannot be viewed or changed; our staff can only check it."),
        back="accounts:settings_security", anchor="code-word",
        page=lambda form: security_page(request, code_word_form=form))


@customer_view(Area.SETTINGS)
@require_POST
@recent_auth_required(back="accounts:settings_security")
def settings_ip_allowlist(request: HttpRequest) -> HttpResponse:
    form = IPAllowlistForm(request.POST)
    return settings_form_post(
        request, form,
        save=lambda: customer_set_ip_allowlist(
            customer=acting_customer(request), actor=request.user, text=form.cleaned_data["ip_allowlist"],
            current_ip=client_ip(request), lockout_confirmed=form.cleaned_data["confirm_lockout"]),
        success=lambda customer: (
            _("IP restriction saved. Access is allowed only from the listed addresses.") if customer.ip_allowlist
            else _("IP restriction removed: access is allowed from any address.")),
        back="accounts:settings_security", anchor="ip-restriction",
        page=lambda form: security_page(request, ip_form=form))


@customer_view(Area.SETTINGS)
@require_POST
def settings_login_options(request: HttpRequest) -> HttpResponse:
    form = LoginOptionsForm(request.POST)
    return settings_form_post(
        request, form,
        save=lambda: customer_update_login_options(customer=acting_customer(request), actor=request.user,
                                                   ip=client_ip(request), **form.cleaned_data),
        success=_("Login options saved."), back="accounts:settings_security", anchor="login-options",
        page=lambda form: security_page(request, login_options_form=form))


@customer_view(Area.ACCOUNT)
@require_POST
def settings_2fa_start(request: HttpRequest) -> HttpResponse:
    return settings_form_post(request, None, save=lambda: totp_setup_start(user=request.user), success=None,
                              back="accounts:settings_security", anchor="two-factor")


@customer_view(Area.ACCOUNT)
@require_POST
def settings_2fa_confirm(request: HttpRequest) -> HttpResponse:
    form = OTPTokenForm(request.POST)

    def confirmed(codes: list[str]) -> str:
        request.session["recovery_codes_once"] = codes
        return _("Two-factor authentication is on. Save your recovery codes now.")

    return settings_form_post(
        request, form,
        save=lambda: totp_setup_confirm(user=request.user, token=form.cleaned_data["token"], ip=client_ip(request)),
        success=confirmed, back="accounts:settings_security", anchor="two-factor",
        page=lambda form: security_page(request, otp_confirm_form=form))


@customer_view(Area.ACCOUNT)
@require_POST
def settings_2fa_disable(request: HttpRequest) -> HttpResponse:
    form = TOTPDisableForm(request.POST)
    return settings_form_post(
        request, form, save=lambda: totp_disable(user=request.user, ip=client_ip(request), **form.cleaned_data),
        success=_("Two-factor authentication is off."), back="accounts:settings_security", anchor="two-factor",
        page=lambda form: security_page(request, otp_disable_form=form))
