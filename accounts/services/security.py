"""Account security settings: the write-once code word, the IP allowlist, login options, password changes."""
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..ip_allowlist import AllowlistError, ip_permitted, parse_allowlist
from ..models import Customer, User
from .activity import activity_record, security_event_record
from .locks import customer_lock


@transaction.atomic
def customer_set_code_word(*, customer: Customer, actor: User, code_word: str, ip: str | None = None) -> None:
    """Write-once: a second call fails even when two requests race (row lock)."""
    locked = customer_lock(customer)
    if locked.code_word_hash:
        raise ValidationError(_("The code word is already set. Contact support to change it."), code="already_set")
    code_word = code_word.strip()
    if len(code_word) < 4:
        raise ValidationError(_("Use at least 4 characters."), code="too_short")
    locked.code_word_hash = make_password(code_word.casefold())
    locked.save(update_fields=["code_word_hash"])
    customer.code_word_hash = locked.code_word_hash
    security_event_record(user=actor, action="code_word_set", ip=ip, change=gettext_lazy("Code word set"))


@transaction.atomic
def customer_check_code_word(*, customer: Customer, staff: User, candidate: str) -> bool:
    """Staff compare what a caller says with the stored hash; every check is audited."""
    matches = bool(customer.code_word_hash) and check_password(candidate.strip().casefold(), customer.code_word_hash)
    activity_record(action="code_word_checked", customer=customer, actor=staff, visible_to_customer=False,
                    details={"matches": matches})
    return matches


@transaction.atomic
def customer_set_ip_allowlist(*, customer: Customer, actor: User, text: str, current_ip: str,
                              lockout_confirmed: bool) -> Customer:
    """Validate the whole list (nothing saved on any bad line) and refuse to lock the customer out silently."""
    try:
        parse_allowlist(text)
    except AllowlistError as error:
        raise ValidationError({"ip_allowlist": [str(e) for e in error.errors]}, code="invalid")
    normalized = "\n".join(line.rstrip() for line in text.strip().splitlines())
    if normalized and not ip_permitted(normalized, current_ip) and not lockout_confirmed:
        raise ValidationError({"confirm_lockout": _(
            "Your current IP address %(ip)s is not in the list: after saving you will lose access. "
            "Tick the confirmation to save anyway.") % {"ip": current_ip}}, code="lockout")
    locked = customer_lock(customer)
    if locked.ip_allowlist == normalized:
        return locked
    locked.ip_allowlist = normalized
    locked.save(update_fields=["ip_allowlist"])
    security_event_record(user=actor, action="ip_allowlist_changed", ip=current_ip,
                          details={"entries": len(parse_allowlist(normalized))},
                          change=gettext_lazy("IP restriction list changed") if normalized
                          else gettext_lazy("IP restriction removed"))
    return locked


@transaction.atomic
def customer_clear_ip_allowlist(*, customer: Customer, staff: User) -> None:
    locked = customer_lock(customer)
    locked.ip_allowlist = ""
    locked.save(update_fields=["ip_allowlist"])
    activity_record(action="ip_allowlist_cleared", customer=locked, actor=staff, visible_to_customer=False)


@transaction.atomic
def customer_update_login_options(*, customer: Customer, actor: User, show_last_login: bool, login_alerts: bool,
                                  ip: str | None = None) -> Customer:
    locked = customer_lock(customer)
    changed = locked.login_alerts != login_alerts
    locked.show_last_login, locked.login_alerts = show_last_login, login_alerts
    locked.save(update_fields=["show_last_login", "login_alerts"])
    if changed:
        security_event_record(user=actor, action="login_alerts_changed", ip=ip, details={"enabled": login_alerts},
                              change=gettext_lazy("Login notifications turned on") if login_alerts
                              else gettext_lazy("Login notifications turned off"))
    return locked


def password_change_record(*, user: User, ip: str | None) -> None:
    with transaction.atomic():
        security_event_record(user=user, action="password_changed", ip=ip, change=gettext_lazy("Password changed"))
