"""Browser console: one-time, short-lived tokens for noVNC, redeemed by the console process.

`console_open` (the customer's POST) asks the module for a VNC ticket (libvirt: a password valid for
a minute on the running domain; Proxmox VE: only a check that the VM runs) and stores a token naming
the user and the VM, valid for CONSOLE_TOKEN_TTL seconds. The console process (websockify,
orders/console_relay.py, `console` in the Procfiles) redeems a token once through `ConsoleTokenPlugin`:
a used, expired or unknown token, a VM that is gone or replaced, a service no longer active, or a user
who lost access to it gets no connection. It then relays the browser's websocket to the VM's VNC
server at the ticket's host:port, or to the stream the module opens (`console_stream`: Proxmox VE's
VNC websocket, started and logged into at that moment).
"""
from __future__ import annotations

import hashlib
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import ConsoleToken, Order, VirtualMachine
from .provisioning import ModuleError, Operation, module_for


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleAccess:
    token: str
    password: str  # the VNC password for the browser (valid for about a minute); never stored


def console_open(*, order: Order, actor, ip: str) -> ConsoleAccess:
    from accounts.services.activity import activity_record

    from .server_control import server_controllable

    if order.status != Order.Status.ACTIVE and order.status != Order.Status.EXPIRED or not server_controllable(order):
        raise ValidationError(_("The console is available only for an active server."))
    module = module_for(order)
    if Operation.CONSOLE not in module.operations:
        raise ValidationError(_("This server has no browser console."))
    vm = VirtualMachine.objects.get(order=order, deleted_at__isnull=True)
    try:
        ticket = module.console_ticket(order)  # the hypervisor, outside any transaction
    except ModuleError:
        raise ValidationError(_("The console could not be opened. Is the server running?")) from None
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        ConsoleToken.objects.create(digest=_digest(token), user=actor, vm=vm, host=ticket.host, port=ticket.port,
                                    expires_at=timezone.now() + timedelta(seconds=settings.CONSOLE_TOKEN_TTL))
        activity_record(action="server_console", customer=order.customer, actor=actor, ip=ip,
                        details={"order": order.pk})
    return ConsoleAccess(token=token, password=ticket.password)


class ConsoleTarget(NamedTuple):
    host: str
    port: int
    order: Order


def console_redeem(*, token: str) -> ConsoleTarget | None:
    """The target of a token used for the first time within its TTL, else None. One UPDATE marks it
    used, so two connections racing with one token get one target."""
    from accounts.roles import Area, role_allows

    now = timezone.now()
    with transaction.atomic():
        row = (ConsoleToken.objects.select_for_update(of=("self",)).select_related("vm__order", "user")
               .filter(digest=_digest(token or ""), used_at__isnull=True, expires_at__gt=now).first())
        if row is None:
            return None
        ConsoleToken.objects.filter(pk=row.pk).update(used_at=now)
    order, user = row.vm.order, row.user
    if (row.vm.deleted_at is not None or order.status not in (Order.Status.ACTIVE, Order.Status.EXPIRED)
            or not user.is_active or user.customer_id != order.customer_id or not role_allows(user, Area.SERVICES)):
        return None
    return ConsoleTarget(row.host, row.port, order)


def console_stream(*, target: ConsoleTarget) -> socket.socket | None:
    """The VNC stream the module opens for a redeemed token, or None: connect to host:port. Raises
    ModuleError when the hypervisor cannot give one."""
    return module_for(target.order).console_stream(target.order)


def console_tokens_purge(*, now=None) -> int:
    """Delete tokens expired for a day (beat)."""
    now = now or timezone.now()
    return ConsoleToken.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()[0]

