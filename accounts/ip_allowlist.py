"""The customer's IP restriction list: parsing, validation and matching.

One entry per line: a single address (`10.0.0.1`, `2001:db8::1`), a hyphen range
(`192.168.0.1-192.168.0.10`) or a CIDR network (`10.0.0.0/8`). `#` starts a comment; blank lines
are ignored. An empty list means no restriction.
"""
import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from django.utils.translation import gettext as _


@dataclass(frozen=True)
class AddressRange:
    version: int
    first: int
    last: int

    def __contains__(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address.version == self.version and self.first <= int(address) <= self.last


@dataclass(frozen=True)
class LineError:
    line: int
    text: str
    message: str

    def __str__(self) -> str:
        return _("Line %(line)d (%(text)s): %(message)s") % {"line": self.line, "text": self.text, "message": self.message}


class AllowlistError(ValueError):
    def __init__(self, errors: list[LineError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def _address(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(_("“%(value)s” is not a valid IPv4 or IPv6 address.") % {"value": text}) from None


def parse_entry(entry: str) -> AddressRange:
    """Parse one non-empty, comment-free entry; ValueError carries a translated message."""
    if "-" in entry:
        left, _sep, right = entry.partition("-")
        first, last = _address(left.strip()), _address(right.strip())
        if first.version != last.version:
            raise ValueError(_("A range cannot mix IPv4 and IPv6 addresses."))
        if int(first) > int(last):
            raise ValueError(_("The range is reversed: the first address is greater than the last."))
        return AddressRange(first.version, int(first), int(last))
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(_("“%(value)s” is not a valid network in CIDR notation.") % {"value": entry}) from None
        return AddressRange(network.version, int(network.network_address), int(network.broadcast_address))
    address = _address(entry)
    return AddressRange(address.version, int(address), int(address))


def parse_allowlist(text: str) -> tuple[AddressRange, ...]:
    """All entries of `text`, or AllowlistError listing every invalid line by its number."""
    ranges: list[AddressRange] = []
    errors: list[LineError] = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            ranges.append(parse_entry(entry))
        except ValueError as error:
            errors.append(LineError(number, entry, str(error)))
    if errors:
        raise AllowlistError(errors)
    return tuple(ranges)


@lru_cache(maxsize=1024)
def _cached_ranges(text: str) -> tuple[AddressRange, ...]:
    try:
        return parse_allowlist(text)
    except AllowlistError:
        # Saved lists are validated; a corrupt one must not lock everybody out nor let everybody in
        # silently, so only its valid entries count.
        ranges = []
        for raw in text.splitlines():
            entry = raw.split("#", 1)[0].strip()
            if entry:
                try:
                    ranges.append(parse_entry(entry))
                except ValueError:
                    pass
        return tuple(ranges)


def ip_permitted(text: str, ip: str) -> bool:
    """True if the list is empty or `ip` falls in one of its entries."""
    ranges = _cached_ranges(text or "")
    if not ranges:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    # An IPv4-mapped IPv6 client (::ffff:10.0.0.1) matches an IPv4 entry and an entry written in IPv6 form.
    candidates = [address]
    if address.version == 6 and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in entry for entry in ranges for candidate in candidates)
