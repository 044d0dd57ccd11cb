"""Deployment checks (`manage.py check --deploy`): production must not run with development defaults."""
from django.conf import settings
from django.core.checks import Error, Tags, register

# The development default of SANDBOX_WEBHOOK_SECRET (portal/settings/base.py): public, so anyone could sign.
DEVELOPMENT_SANDBOX_SECRET = "sandbox-webhook-secret-change-me"


@register(Tags.security, deploy=True)
def payment_sandbox_off(app_configs=None, **kwargs):
    errors = []
    if settings.PAYMENT_SANDBOX_ENABLED:
        errors.append(Error(
            "PAYMENT_SANDBOX_ENABLED is on: anyone can pay with test cards and the sandbox webhook credits balances.",
            hint="Set PAYMENT_SANDBOX_ENABLED=0 in production.", id="portal.E001"))
        secret = settings.SANDBOX_WEBHOOK_SECRET
        if secret == DEVELOPMENT_SANDBOX_SECRET or len(secret) < 32:
            errors.append(Error(
                "SANDBOX_WEBHOOK_SECRET is the public development value (or shorter than 32 characters).",
                hint="Set a random SANDBOX_WEBHOOK_SECRET, or turn the sandbox off.", id="portal.E002"))
    return errors
