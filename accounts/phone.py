"""Mobile number normalisation and pluggable verification backends.

`settings.PHONE_VERIFICATION_BACKEND` names a class with `methods` (what it can do: "sms", "call"),
`method` (its default) and `deliver(phone, method=None) -> code`: the backend decides the code and
gets it to the customer. When it can do both, the customer chooses. For SMS it is a
random number sent as text; for a "call password" it is the last four digits of the number the
gateway calls from (the customer does not need to answer).
"""
import json
import logging
import secrets
import urllib.request

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

import phonenumbers

logger = logging.getLogger(__name__)


# The example shown in the field and in its error: a valid mobile number (SMS needs one).
PHONE_EXAMPLE = "+49 151 23456789"
MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
CALLABLE_TYPES = (*MOBILE_TYPES, phonenumbers.PhoneNumberType.FIXED_LINE)


def normalize_phone(raw: str, *, region: str | None = None, mobile_only: bool = True) -> str:
    """E.164 form of `raw`, or ValueError with a translated message. A call password can also reach a
    landline (mobile_only=False); a text message cannot."""
    try:
        number = phonenumbers.parse(raw, (region or None) if not raw.strip().startswith("+") else None)
    except phonenumbers.NumberParseException:
        raise ValueError(_("Enter the number in international format, e.g. %(example)s.") % {"example": PHONE_EXAMPLE}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_("This is not a valid phone number."))
    if phonenumbers.number_type(number) not in (MOBILE_TYPES if mobile_only else CALLABLE_TYPES):
        raise ValueError(_("Enter a mobile number.") if mobile_only else _("Enter a mobile or landline number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str) -> str:
    if not e164:
        return ""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164


class DevelopmentBackend:
    """Writes the code to the log instead of sending it (tests and the demo). Simulates both an SMS
    and a call-password gateway, so the demo shows the choice."""

    methods = ("sms", "call")
    method = "sms"

    def deliver(self, phone: str, method: str | None = None) -> str:
        if (method or self.method) == "call":
            code = f"{secrets.randbelow(10 ** 4):04d}"
            logger.warning("Phone verification call to %s from +1555000%s (development backend)", phone, code)
            return code
        code = f"{secrets.randbelow(10 ** 6):06d}"
        logger.warning("Phone verification code for %s: %s (development backend, nothing was sent)", phone, code)
        return code


class DevelopmentCallBackend(DevelopmentBackend):
    """Simulates a call-password-only gateway: logs the caller number whose last 4 digits are the code."""

    methods = ("call",)
    method = "call"


class HttpGatewayBackend:
    """A generic JSON-over-HTTPS SMS / call-password gateway.

    POSTs {"to", "method", "text"} to PHONE_GATEWAY_URL with a bearer PHONE_GATEWAY_TOKEN. For SMS we
    choose the code; for calls the gateway answers {"caller": "+1..."} and the code is its last 4 digits.
    """

    def __init__(self):
        # PHONE_GATEWAY_METHOD: "sms", "call" or "sms,call" (the gateway does both; the first is the default).
        names = [name.strip() for name in settings.PHONE_GATEWAY_METHOD.split(",")]
        self.methods = tuple(name for name in names if name in ("sms", "call")) or ("sms",)
        self.method = self.methods[0]

    def deliver(self, phone: str, method: str | None = None) -> str:
        method = method if method in self.methods else self.method
        code = f"{secrets.randbelow(10 ** 6):06d}" if method == "sms" else ""
        payload = {"to": phone, "method": method}
        if code:
            payload["text"] = _("Your %(portal)s verification code: %(code)s") % {"portal": settings.PORTAL_NAME, "code": code}
        request = urllib.request.Request(
            settings.PHONE_GATEWAY_URL, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {settings.PHONE_GATEWAY_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read() or b"{}")
        if method == "call":
            digits = "".join(ch for ch in str(answer.get("caller", "")) if ch.isdigit())
            if len(digits) < 4:
                raise RuntimeError("phone gateway returned no caller number")
            code = digits[-4:]
        return code


def verification_backend():
    return import_string(settings.PHONE_VERIFICATION_BACKEND)()
