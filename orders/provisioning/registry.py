"""Provisioning modules by code, like billing's gateways: built-ins register at startup
(OrdersConfig.ready); a new module is one `register_module` call."""
from .base import ProvisioningModule

_modules: dict[str, ProvisioningModule] = {}


def register_module(module: ProvisioningModule) -> None:
    _modules[module.code] = module


def get_module(code: str) -> ProvisioningModule:
    if not _modules:
        register_builtin_modules()
    try:
        return _modules[code]
    except KeyError:
        raise LookupError(f"No provisioning module {code!r} is registered.") from None


def module_codes() -> list[str]:
    if not _modules:
        register_builtin_modules()
    return list(_modules)


def register_builtin_modules() -> None:
    from .ip_pool import IpPoolModule
    from .libvirt_kvm import LibvirtModule
    from .manual import ManualModule
    from .proxmox import ProxmoxModule

    for module in (ManualModule(), IpPoolModule(), LibvirtModule(), ProxmoxModule()):
        register_module(module)
