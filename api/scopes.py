"""API key scopes: each is an area of `accounts.roles` with read or write access.

A request needs the scope on the key AND the area in the user's role at the time of the request, so a
key never does more than its user can, even after the user's role is narrowed.
"""
from django.utils.translation import gettext_lazy as _

from accounts.roles import ROLE_AREAS, Area

READ = "read"
WRITE = "write"

SCOPES: dict[str, tuple[str, str]] = {
    "account:read": (Area.ACCOUNT, READ),
    "billing:read": (Area.BILLING, READ),
    "billing:write": (Area.BILLING, WRITE),
    "services:read": (Area.SERVICES, READ),
    "services:write": (Area.SERVICES, WRITE),
    "tickets:read": (Area.TICKETS, READ),
    "tickets:write": (Area.TICKETS, WRITE),
}

SCOPE_LABELS = {
    "account:read": _("Account and notifications: read"),
    "billing:read": _("Balance, invoices and payments: read"),
    "billing:write": _("Pay invoices and spend the balance"),
    "services:read": _("Services: read"),
    "services:write": _("Services: cancel and manage"),
    "tickets:read": _("Tickets: read"),
    "tickets:write": _("Tickets: open and reply"),
}


def scope_name(area: str, access: str) -> str:
    return f"{area}:{access}"


def scopes_for_role(role: str) -> list[str]:
    """The scopes a user of `role` may put on a key (those whose area the role has)."""
    areas = ROLE_AREAS.get(role, frozenset())
    return [scope for scope, (area, _access) in SCOPES.items() if area in areas]


def key_allows(scopes: list[str], area: str, access: str) -> bool:
    """A write scope implies read access to the same area."""
    if scope_name(area, access) in scopes:
        return True
    return access == READ and scope_name(area, WRITE) in scopes
