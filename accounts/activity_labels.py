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
    "code_word_checked": _("Code word checked by staff"),
    "ip_allowlist_cleared": _("IP restriction cleared by staff"),
    "company_verified": _("Company verified"),
    "company_rejected": _("Company verification declined"),
    "policy_published": _("Policy published"),
    "account_anonymized": _("Account anonymised"),
    # Other apps' codes carry their app's prefix.
    "billing.adjustment": _("Balance adjusted by staff"),
    "billing.autopay_configured": _("Auto-payment settings changed"),
    "billing.bank_transfer_recorded": _("Bank transfer recorded"),
    "billing.contract_accepted": _("Contract accepted"),
    "billing.contract_published": _("Contract published"),
    "billing.currency_changed": _("Account currency changed"),
    "billing.fixed_rate_set": _("Exchange rate set by staff"),
    "billing.gateway_refund": _("Card payment refunded"),
    "billing.refund": _("Refund"),
    "billing.invoice_cancelled": _("Invoice cancelled"),
    "billing.invoice_payer_chosen": _("Payer chosen for an invoice"),
    "billing.payer_created": _("Payer added"),
    "billing.payer_updated": _("Payer changed"),
    "billing.payer_archived": _("Payer archived"),
    "billing.payer_deleted": _("Payer deleted"),
    "billing.payer_verified": _("Payer verified"),
    "billing.payer_rejected": _("Payer verification declined"),
    "billing.payment_method_added": _("Payment method added"),
    "billing.payment_method_removed": _("Payment method removed"),
    "notifications.email_retried": _("Email sent again by staff"),
    "ticket.closed": _("Ticket closed"),
    "ticket.updated": _("Ticket changed"),
    "order_suspend": _("Service suspended by staff"),
    "order_unsuspend": _("Service unsuspended by staff"),
    "order_terminate": _("Service terminated by staff"),
    "order_extend": _("Service extended by staff"),
    "order_completed": _("Server set up by staff"),
    "order_provision_retry": _("Server setup retried by staff"),
    "server_power": _("Server power action"),
    "server_reinstall": _("Server reinstalled"),
    "server_console": _("Server console opened"),
    "reverse_dns_set": _("Reverse DNS changed"),
}

FAILURE_REASONS = {
    "password": _("wrong password"),
    "2fa_code": _("wrong two-factor code"),
    "ip_restricted": _("IP address not allowed"),
}


def activity_label(event) -> str:
    label = LABELS.get(event.action)
    if label is None:  # a code added without a label: readable words, not "Billing.payer created"
        return event.action.rpartition(".")[2].replace("_", " ").capitalize()
    if event.action == "login_failed":
        reason = FAILURE_REASONS.get((event.details or {}).get("reason", ""))
        if reason:
            return f"{label}: {reason}"
    return str(label)
