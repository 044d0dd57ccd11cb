"""The provisioning-module interface: every operation a module may implement, in one place.

A module is registered under a code (`registry.register_module`) and named by a plan (`Plan.module`,
else its product type's `provisioner`) together with the plan's `module_settings`.

Two kinds of module:
- database-only modules (`runs_in_jobs = False`: manual, ip_pool) do their work inside the caller's
  transaction: `provision` allocates and the order is active at once, or waits for staff;
- hypervisor modules (`runs_in_jobs = True`: libvirt) get every operation called from a Celery task on
  a `ProvisioningJob` row (orders/provisioning/jobs.py), outside any database transaction, retried
  with back-off. Their operations must be idempotent: each one reconciles (a job that finds the VM
  already in the wanted state succeeds), since a retried or swept job may run an operation twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

    from orders.models import Order, Plan


class Operation(StrEnum):
    CREATE = "create"
    START = "start"
    SHUTDOWN = "shutdown"
    REBOOT = "reboot"
    POWER_OFF = "power_off"
    STATUS = "status"
    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    RESIZE = "resize"
    REINSTALL = "reinstall"
    TERMINATE = "terminate"
    CONSOLE = "console_ticket"
    USAGE = "usage_sample"
    BANDWIDTH = "set_bandwidth"


class ModuleError(Exception):
    """A module call failed. The message is for staff (job's last error) and must hold no secret.
    `retryable` failures are retried with back-off; others fail the job at once."""

    retryable = True


class NotSupported(ModuleError):
    retryable = False


@dataclass(frozen=True)
class ProvisionResult:
    """What the payment-time step decided. `ip` set: the order is active now (database-only modules).
    `queued`: a hypervisor job was queued and the order is "being set up". Neither: waiting for staff."""

    ip: str | None
    note: str = ""
    queued: bool = False

    @property
    def done(self) -> bool:
        return self.ip is not None


@dataclass(frozen=True)
class MachineSpec:
    vcpus: int
    memory_mib: int
    disk_gib: int


@dataclass(frozen=True)
class ResizeOutcome:
    rebooted: bool
    disk_kept_gib: int | None = None  # set when a smaller disk was asked for: disks only grow


@dataclass(frozen=True)
class ConsoleTicket:
    host: str
    port: int
    # The VNC password the browser logs in with; empty when the console process logs in itself
    # (a module with `console_stream`).
    password: str
    expires_in: int  # seconds


@dataclass(frozen=True)
class UsageSample:
    cpu_time_ns: int
    net_rx_bytes: int
    net_tx_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int


class ProvisioningModule:
    """Base class. Unsupported operations raise NotSupported; `operations` lists what a module does so
    the portal (admin now, the customer's server page later) shows only what works."""

    code: str = ""
    name: str = ""
    runs_in_jobs: bool = False
    operations: frozenset[Operation] = frozenset()

    # --- configuration -----------------------------------------------------------------------------
    def settings_errors(self, settings: dict) -> list[str]:
        """Problems in a plan's `module_settings` (shown as the admin form's error)."""
        return [] if not settings else [f"This module takes no settings (got {', '.join(sorted(settings))})."]

    def machine_spec(self, plan: Plan) -> MachineSpec:
        return MachineSpec(vcpus=plan.cpu_cores, memory_mib=plan.ram_gb * 1024, disk_gib=plan.disk_gb)

    def order_spec(self, order: Order, *, plan: Plan | None = None) -> MachineSpec:
        """The order's machine: its plan's (or `plan`'s) plus the extra vCPU, RAM and disk it holds as add-ons."""
        from orders.addons import resource_extras

        spec = self.machine_spec(plan or order.plan)
        extras = resource_extras(order)
        return MachineSpec(vcpus=spec.vcpus + extras["cpu"], memory_mib=spec.memory_mib + extras["ram"] * 1024,
                           disk_gib=spec.disk_gib + extras["disk"])

    def resize_needs_reboot(self, old: MachineSpec, new: MachineSpec) -> bool:
        """Whether a plan change restarts the server (the customer is told before confirming)."""
        return False

    # --- payment time, inside the caller's transaction ---------------------------------------------
    def provision(self, order: Order) -> ProvisionResult:
        raise NotImplementedError

    def release(self, order: Order) -> None:
        """The service ended; database-only clean-up (hypervisor modules terminate in a job)."""

    # --- operations (hypervisor modules: called by jobs, outside transactions) ---------------------
    def _unsupported(self, operation: Operation):
        raise NotSupported(f"The {self.code} module does not support {operation.value}.")

    def create(self, order: Order) -> str:
        """Create (or find) the server; returns its IP address."""
        self._unsupported(Operation.CREATE)

    def start(self, order: Order) -> None:
        self._unsupported(Operation.START)

    def shutdown(self, order: Order) -> None:
        self._unsupported(Operation.SHUTDOWN)

    def reboot(self, order: Order) -> None:
        self._unsupported(Operation.REBOOT)

    def power_off(self, order: Order) -> None:
        self._unsupported(Operation.POWER_OFF)

    def status(self, order: Order) -> str:
        """"running", "stopped", "paused", "missing" or "unknown"."""
        return "unknown"

    def suspend(self, order: Order) -> None:
        self._unsupported(Operation.SUSPEND)

    def unsuspend(self, order: Order) -> None:
        self._unsupported(Operation.UNSUSPEND)

    def resize(self, order: Order, spec: MachineSpec) -> ResizeOutcome:
        self._unsupported(Operation.RESIZE)

    def reinstall(self, order: Order, *, os_image: str, ssh_keys: list[str], instance_id: str) -> None:
        self._unsupported(Operation.REINSTALL)

    def terminate(self, order: Order) -> None:
        self._unsupported(Operation.TERMINATE)

    def console_ticket(self, order: Order) -> ConsoleTicket:
        """When the customer opens the console: where its VNC server is, and the browser's password."""
        self._unsupported(Operation.CONSOLE)

    def console_stream(self, order: Order) -> socket.socket | None:
        """When the browser connects with a valid console token (in the console process): a socket that
        speaks RFB to the browser from its first byte, the module having logged into the VM's VNC
        server itself; or None, and the process connects to the ticket's host:port (plain VNC, the
        browser logs in with the ticket's password)."""
        return None

    def usage_sample(self, order: Order) -> UsageSample:
        self._unsupported(Operation.USAGE)

    def set_bandwidth(self, order: Order, mbps: int | None) -> None:
        """Limit the server's network interface to `mbps` Mbit/s each way (None: lift the limit). The
        limit must survive a restart of the VM (traffic quota, orders/traffic_quota.py)."""
        self._unsupported(Operation.BANDWIDTH)
