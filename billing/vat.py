"""EU VAT numbers: format and check digits with python-stdnum, then the Commission's VIES service.

VIES is called over SOAP (`checkVatApprox`) at `BILLING_VIES_URL` with the seller's own VAT id as the
requester, so the answer carries a consultation number (`requestIdentifier`) that proves the check.
Policy when VIES cannot answer (network error, timeout, a SOAP fault such as MS_UNAVAILABLE): the
result is `unavailable`; nothing is refused because of it — staff may still verify the company and
invoices and payments go on under the tax rule as it stands — and the beat job `billing-vies-recheck`
asks again until VIES answers. An `invalid` answer refuses verification, and a verified payer whose
number VIES later finds invalid goes back to "awaiting verification" (so it loses reverse charge).
"""
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree

import requests
from django.conf import settings
from django.utils import timezone
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

VALID, INVALID, UNAVAILABLE = "valid", "invalid", "unavailable"
_NS = "urn:ec.europa.eu:taxud:vies:services:checkVat:types"


def vat_number_clean(number: str) -> str:
    """The compact number (DE136695976) if stdnum accepts its format and check digits; ValueError otherwise.
    Numbers with a non-EU prefix are only compacted (VIES knows EU numbers only)."""
    compact = eu_vat.compact(number or "")
    if compact[:2] not in eu_vat.MEMBER_STATES and compact[:2].lower() not in eu_vat.MEMBER_STATES:
        return compact
    try:
        return eu_vat.validate(compact)
    except StdnumError as error:
        raise ValueError(str(error)) from error


def is_eu_vat_number(number: str) -> bool:
    return (number or "")[:2].lower() in eu_vat.MEMBER_STATES


@dataclass(frozen=True)
class ViesResult:
    status: str  # valid / invalid / unavailable
    checked_at: datetime
    consultation_number: str = ""
    name: str = ""
    address: str = ""
    error: str = ""


def _envelope(country: str, number: str) -> str:
    requester = settings.BILLING_SELLER_VAT_ID.replace(" ", "").upper()
    requester_xml = (f"<tns:requesterCountryCode>{requester[:2]}</tns:requesterCountryCode>"
                     f"<tns:requesterVatNumber>{requester[2:]}</tns:requesterVatNumber>") if requester else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:tns="{_NS}"><soap:Body><tns:checkVatApprox>'
            f"<tns:countryCode>{country}</tns:countryCode><tns:vatNumber>{number}</tns:vatNumber>{requester_xml}"
            "</tns:checkVatApprox></soap:Body></soap:Envelope>")


def vies_check(number: str) -> ViesResult:
    """Ask VIES about an EU VAT number (already cleaned). Never raises: failures are `unavailable`."""
    now = timezone.now()
    compact = eu_vat.compact(number)
    country, rest = compact[:2].upper(), compact[2:]
    try:
        response = requests.post(settings.BILLING_VIES_URL, data=_envelope(country, rest).encode(),
                                 headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=settings.BILLING_VIES_TIMEOUT)
        root = ElementTree.fromstring(response.content)
    except (requests.RequestException, ElementTree.ParseError) as error:
        return ViesResult(UNAVAILABLE, now, error=str(error)[:255])
    fault = root.find(".//faultstring")
    if fault is not None or response.status_code != 200:
        return ViesResult(UNAVAILABLE, now, error=(fault.text if fault is not None else f"HTTP {response.status_code}")[:255])

    def text(tag: str) -> str:
        node = root.find(f".//{{{_NS}}}{tag}")
        return (node.text or "").strip() if node is not None else ""

    valid = text("valid").lower()
    if valid not in ("true", "false"):
        return ViesResult(UNAVAILABLE, now, error="VIES answer without a verdict")
    return ViesResult(VALID if valid == "true" else INVALID, now, consultation_number=text("requestIdentifier")[:64],
                      name=text("traderName")[:255], address=text("traderAddress")[:255])
