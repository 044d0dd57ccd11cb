"""Human labels for ActivityEvent.action codes shown in the customer's Activity log.

Other apps record their own actions; unknown codes are shown humanised.
"""
from django.utils.translation import gettext_lazy as _

LABELS = {
    "login": _("Logged in"),
    "login_failed": _("Failed login"),
    "email_change_requested": _("Email change requested"),
    "email_changed": _("Email address changed"),
    "password_changed": _("Password changed"),
    "phone_verified": _("Mobile number verified"),
    "address_changed": _("Postal address changed"),
    "profile_type_changed": _("Profile type changed"),
    "preferences_changed": _("Preferences changed"),
    "email_routing_changed": _("Email routing changed"),
    "code_word_set": _("Code word set"),
    "ip_allowlist_changed": _("IP restriction changed"),
    "login_alerts_changed": _("Login notifications changed"),
    "2fa_enabled": _("Two-factor authentication turned on"),
    "2fa_disabled": _("Two-factor authentication turned off"),
    "2fa_reset_by_staff": _("Two-factor authentication turned off by support"),
    "trusted_user_added": _("Trusted user added"),
    "trusted_user_role_changed": _("Trusted user role changed"),
    "trusted_user_revoked": _("Trusted user access revoked"),
    "invitation_accepted": _("Invitation accepted"),
    "policy_accepted": _("Policy accepted"),
    "data_export_requested": _("Data export requested"),
    "deletion_requested": _("Account deletion requested"),
    "deletion_cancelled": _("Account deletion request withdrawn"),
    "deletion_rejected": _("Account deletion request declined"),
    "social_linked": _("Social login linked"),
    "social_unlinked": _("Social login unlinked"),
    "telegram_linked": _("Telegram linked"),
    "telegram_unlinked": _("Telegram unlinked"),
}

FAILURE_REASONS = {
    "password": _("wrong password"),
    "2fa_code": _("wrong two-factor code"),
    "ip_restricted": _("IP address not allowed"),
}


def activity_label(event) -> str:
    label = LABELS.get(event.action)
    if label is None:
        return event.action.replace("_", " ").capitalize()
    if event.action == "login_failed":
        reason = FAILURE_REASONS.get((event.details or {}).get("reason", ""))
        if reason:
            return f"{label}: {reason}"
    return str(label)
