"""Reverse DNS (PTR records) for the customer's own server addresses, through the PowerDNS
Authoritative HTTP API (`PDNS_API_URL`, `PDNS_API_KEY`, `PDNS_SERVER_ID`; the reverse zones staff
delegate to it in `PDNS_REVERSE_ZONES`). Only an address allocated to the customer's order may be
changed; each change is written to the activity log. PowerDNS holds the records (no copy here)."""
from __future__ import annotations

import ipaddress
import re

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from .models import IpAddress, Order

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
TIMEOUT = 5


class DnsUnavailable(Exception):
    pass


def hostname_clean(value: str) -> str:
    """A fully qualified host name in lower case without the final dot; '' removes the record."""
    name = (value or "").strip().lower().rstrip(".")
    if not name:
        return ""
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValidationError(_("Enter a full host name such as server.example.com."), code="invalid_hostname")
    return name


def order_addresses(order: Order) -> list[str]:
    return list(IpAddress.objects.filter(order=order).values_list("address", flat=True))


def _zones() -> list[str]:
    return [zone.strip().rstrip(".") + "." for zone in settings.PDNS_REVERSE_ZONES.split(",") if zone.strip()]


def reverse_name(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer + "."


def zone_for(address: str) -> str | None:
    name = reverse_name(address)
    matching = [zone for zone in _zones() if name.endswith("." + zone)]
    return max(matching, key=len) if matching else None


def _api(method: str, path: str, **kwargs):
    url = f"{settings.PDNS_API_URL.rstrip('/')}/api/v1/servers/{settings.PDNS_SERVER_ID}{path}"
    try:
        response = requests.request(method, url, headers={"X-API-Key": settings.PDNS_API_KEY}, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as error:
        raise DnsUnavailable(str(error)) from None
    if response.status_code >= 400:
        raise DnsUnavailable(f"PowerDNS {response.status_code}: {response.text[:200]}")
    return response


def ptr_records(order: Order) -> list[dict]:
    """Each address of the order with its current PTR ('' when none) and whether a zone serves it."""
    rows = []
    for address in order_addresses(order):
        zone, hostname = zone_for(address), ""
        if zone and settings.PDNS_API_URL:
            try:
                data = _api("GET", f"/zones/{zone}", params={"rrset_name": reverse_name(address), "rrset_type": "PTR"}).json()
            except DnsUnavailable:
                data = {}
            for rrset in data.get("rrsets", []):
                if rrset["name"] == reverse_name(address) and rrset["type"] == "PTR" and rrset["records"]:
                    hostname = rrset["records"][0]["content"].rstrip(".")
        rows.append({"address": address, "hostname": hostname, "zone": zone})
    return rows


def ptr_set(*, order: Order, address: str, hostname: str, actor, ip: str) -> None:
    """Set (or with an empty hostname remove) the PTR record of one of the order's addresses."""
    from accounts.services.activity import activity_record

    hostname = hostname_clean(hostname)
    if address not in order_addresses(order):
        raise ValidationError(_("This address does not belong to this service."), code="foreign_address")
    zone = zone_for(address)
    if zone is None or not settings.PDNS_API_URL:
        raise ValidationError(_("Reverse DNS cannot be changed for this address here. Contact support."))
    rrset = {"name": reverse_name(address), "type": "PTR", "ttl": settings.PDNS_PTR_TTL}
    rrset |= ({"changetype": "REPLACE", "records": [{"content": hostname + ".", "disabled": False}]} if hostname
              else {"changetype": "DELETE"})
    try:
        _api("PATCH", f"/zones/{zone}", json={"rrsets": [rrset]})
    except DnsUnavailable:
        raise ValidationError(_("The DNS server did not accept the change. Try again later.")) from None
    with transaction.atomic():
        activity_record(action="reverse_dns_set", customer=order.customer, actor=actor, ip=ip,
                        details={"order": order.pk, "address": address, "hostname": hostname})
