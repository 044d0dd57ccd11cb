"""cloud-init NoCloud seed images: hostname, root password (as a SHA-512 crypt hash, never in clear),
SSH keys and the static network configuration, on an ISO labelled "cidata" built with Debian's
genisoimage (package genisoimage, also used by cloud-image-utils' cloud-localds).

YAML is a superset of JSON, so the documents are written with json.dumps: no YAML dependency and
no quoting mistakes with customer-supplied hostnames or keys.
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.11, removed in 3.13; hashlib has no crypt
    import crypt

from .base import ModuleError


@dataclass(frozen=True)
class SeedConfig:
    instance_id: str
    hostname: str
    root_password: str
    ssh_keys: list[str] = field(default_factory=list)
    ip: str | None = None
    prefix_length: int = 24
    gateway: str | None = None
    nameservers: list[str] = field(default_factory=list)


def password_hash(password: str) -> str:
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def user_data(config: SeedConfig) -> str:
    short = config.hostname.split(".", 1)[0]
    document = {
        "hostname": short,
        "fqdn": config.hostname,
        "disable_root": False,
        "ssh_pwauth": True,
        "chpasswd": {"expire": False, "users": [{"name": "root", "password": password_hash(config.root_password),
                                                  "type": "HASH"}]},
        "users": [{"name": "root", "ssh_authorized_keys": list(config.ssh_keys)}] if config.ssh_keys else ["default"],
    }
    return "#cloud-config\n" + json.dumps(document, indent=1) + "\n"


def meta_data(config: SeedConfig) -> str:
    return json.dumps({"instance-id": config.instance_id, "local-hostname": config.hostname.split(".", 1)[0]}) + "\n"


def network_config(config: SeedConfig) -> str | None:
    if not config.ip:
        return None
    address = ipaddress.ip_address(config.ip)
    ethernet = {"match": {"name": "e*"}, "addresses": [f"{address}/{config.prefix_length}"]}
    if config.gateway:
        ethernet["routes"] = [{"to": "default" if address.version == 4 else "::/0", "via": config.gateway}]
    if config.nameservers:
        ethernet["nameservers"] = {"addresses": config.nameservers}
    return json.dumps({"version": 2, "ethernets": {"eth0": ethernet}}) + "\n"


def iso_tool() -> str | None:
    return shutil.which("genisoimage") or shutil.which("mkisofs")


def seed_iso(config: SeedConfig) -> bytes:
    """The NoCloud seed image's bytes (built in a private temporary directory, removed at once)."""
    tool = iso_tool()
    if tool is None:
        raise ModuleError("genisoimage is not installed on the portal host (apt install genisoimage).")
    with tempfile.TemporaryDirectory(prefix="seed-") as directory:
        root = Path(directory)
        files = {"user-data": user_data(config), "meta-data": meta_data(config)}
        network = network_config(config)
        if network:
            files["network-config"] = network
        for name, text in files.items():
            (root / name).write_text(text)
        output = root / "seed.iso"
        completed = subprocess.run([tool, "-quiet", "-output", str(output), "-volid", "cidata", "-joliet", "-rock",
                                    *[str(root / name) for name in files]], capture_output=True, timeout=60)
        if completed.returncode != 0:
            raise ModuleError(f"Building the cloud-init seed failed: {completed.stderr.decode(errors='replace')[:300]}")
        return output.read_bytes()
