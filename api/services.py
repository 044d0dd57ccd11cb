"""Writes for API keys."""
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.ip_allowlist import AllowlistError, parse_allowlist
from accounts.models import User
from accounts.services.activity import activity_record

from .keys import token_hash, token_new
from .models import ApiKey
from .scopes import SCOPES, scopes_for_role


@transaction.atomic
def api_key_create(*, user: User, name: str, scopes: list[str], expires_at: datetime | None, allowed_ips: str = "",
                   ip: str | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its token, which is shown once and never stored."""
    if user.customer_id is None or not user.is_active:
        raise ValidationError(_("API keys are for customer accounts."), code="not_customer")
    allowed = set(scopes_for_role(user.role))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    beyond = [scope for scope in scopes if scope in SCOPES and scope not in allowed]
    if unknown or beyond:
        raise ValidationError({"scopes": _("Your role does not allow these scopes: %(scopes)s.")
                               % {"scopes": ", ".join(unknown + beyond)}}, code="scope_beyond_role")
    if not scopes:
        raise ValidationError({"scopes": _("Choose at least one scope.")}, code="no_scopes")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": _("The expiry must be in the future.")}, code="expired")
    try:
        parse_allowlist(allowed_ips)
    except AllowlistError as error:
        raise ValidationError({"allowed_ips": [str(e) for e in error.errors]}, code="allowed_ips") from None
    User.objects.select_for_update().get(pk=user.pk)  # serialises the per-user key count
    if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= settings.API_KEYS_PER_USER:
        raise ValidationError(_("You have reached the limit of %(limit)d active keys. Revoke one first.")
                              % {"limit": settings.API_KEYS_PER_USER}, code="too_many_keys")
    prefix, token = token_new()
    key = ApiKey(user=user, customer_id=user.customer_id, name=name.strip(), prefix=prefix, secret_hash=token_hash(token),
                 scopes=sorted(set(scopes)), expires_at=expires_at, allowed_ips=allowed_ips.strip())
    key.full_clean()
    key.save()
    activity_record(action="api_key_created", customer=user.customer, actor=user, ip=ip,
                    details={"api_key": key.name, "api_key_prefix": prefix, "scopes": key.scopes})
    return key, token


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User, ip: str | None = None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        activity_record(action="api_key_revoked", customer=key.customer, actor=actor, ip=ip,
                        details={"api_key": key.name, "api_key_prefix": key.prefix})
    return key
