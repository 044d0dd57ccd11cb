"""Payers: whom invoices are made out to, staff verification (VIES), and the payment gate. Their effective
details are read by `billing.selectors.payer_details`."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer
from accounts.services.activity import activity_record

from .. import vat
from ..models import Invoice, Payer
from ..selectors import invoice_payment_blockers
from .errors import BillingError, PaymentBlocked


def payer_profile_get_or_create(*, customer: Customer) -> Payer:
    """The customer's default payer, which mirrors the profile; created on first use."""
    payer, _created = Payer.objects.get_or_create(customer=customer, is_profile=True)
    return payer


# Editing any of these on a company payer sends it back to staff verification.
PAYER_COMPANY_FIELDS = ("payer_type", "company_name", "registration_number", "vat_number", "street", "city", "postcode", "country")


PAYER_FIELDS = PAYER_COMPANY_FIELDS + ("name", "email")


def _payer_audit_details(payer: Payer) -> dict:
    return {"payer_id": payer.pk, "payer": payer.company_name or payer.name, "type": payer.payer_type,
            "status": payer.verification_status}


@transaction.atomic
def payer_create(*, customer: Customer, data: dict, actor=None, ip: str | None = None) -> Payer:
    """A new payer; a company starts awaiting staff verification."""
    payer = Payer(customer=customer, **{field: (data.get(field) or "").strip() for field in PAYER_FIELDS})
    if payer.payer_type == Payer.Type.COMPANY:
        payer.verification_status = Payer.Verification.PENDING
    payer.full_clean()
    payer.save()
    activity_record(action="billing.payer_created", customer=customer, actor=actor, ip=ip, details=_payer_audit_details(payer))
    return payer


@transaction.atomic
def payer_update(*, payer: Payer, data: dict, actor=None, ip: str | None = None) -> Payer:
    """Edit a payer. Changing a company's company fields (or turning a person into a company) sends it
    back to verification; a company turned into a private person needs none."""
    payer = Payer.objects.select_for_update().get(pk=payer.pk)
    if payer.is_profile:
        raise BillingError(_("The profile payer is edited in your profile settings."))
    if payer.archived_at:
        raise BillingError(_("An archived payer cannot be changed."))
    before = {field: getattr(payer, field) for field in PAYER_COMPANY_FIELDS}
    for field in PAYER_FIELDS:
        setattr(payer, field, (data.get(field) or "").strip())
    if payer.country != before["country"]:
        payer.country_approved_at = None  # staff approved the old country, not this one
    company_changed = any(getattr(payer, field) != value for field, value in before.items())
    if payer.payer_type == Payer.Type.PRIVATE:
        payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.NOT_REQUIRED, "", None
    elif company_changed or payer.verification_status == Payer.Verification.NOT_REQUIRED:
        payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.PENDING, "", None
    payer.full_clean()
    payer.save()
    activity_record(action="billing.payer_updated", customer=payer.customer, actor=actor, ip=ip, details=_payer_audit_details(payer))
    return payer


@transaction.atomic
def payer_delete(*, payer: Payer, actor=None, ip: str | None = None) -> bool:
    """Delete a payer no document refers to; otherwise archive it (documents keep pointing at it).
    Returns True when deleted, False when archived."""
    payer = Payer.objects.select_for_update().get(pk=payer.pk)
    if payer.is_profile:
        raise BillingError(_("The profile payer cannot be removed."))
    in_use = payer.invoices.exists() or payer.acts.exists() or payer.contract_acceptances.exists()
    details = _payer_audit_details(payer)
    if in_use:
        if payer.archived_at is None:
            payer.archived_at = timezone.now()
            payer.save(update_fields=["archived_at"])
        activity_record(action="billing.payer_archived", customer=payer.customer, actor=actor, ip=ip, details=details)
        return False
    payer.delete()
    activity_record(action="billing.payer_deleted", customer=payer.customer, actor=actor, ip=ip, details=details)
    return True


# Blanked when the account is erased; type, country and verification state carry no personal data.
PAYER_PERSONAL_FIELDS = ("name", "company_name", "registration_number", "vat_number", "street", "city", "postcode", "email",
                         "verification_note")


@transaction.atomic
def payers_anonymize(*, customer: Customer) -> int:
    """Account erasure: blank every payer's personal fields and archive it. The profile payer stores
    nothing (it mirrors the profile, which accounts anonymizes); invoices, acts and contract acceptances
    keep the details printed on them (legal records). Returns how many payers were anonymized."""
    payers = Payer.objects.select_for_update().filter(customer=customer, is_profile=False)
    ids = list(payers.values_list("pk", flat=True))
    now = timezone.now()
    Payer.objects.filter(pk__in=ids).update(**{field: "" for field in PAYER_PERSONAL_FIELDS})
    Payer.objects.filter(pk__in=ids, archived_at__isnull=True).update(archived_at=now)
    return len(ids)


def _payer_for_staff(payer: Payer) -> Payer:
    payer = Payer.objects.select_for_update(of=("self",)).select_related("customer").get(pk=payer.pk)
    if payer.is_profile or payer.payer_type != Payer.Type.COMPANY:
        raise BillingError(_("Only company payers are verified."), code="not_company")
    return payer


def payer_verify(*, payer: Payer, staff) -> Payer:
    """Staff verify a company. An EU VAT number is asked of VIES first (outside the transaction: no row
    lock is held during the call): `invalid` refuses, `unavailable` does not (see billing/vat.py)."""
    result = _vies_ask(payer)
    if result is not None and result.status == vat.INVALID:
        with transaction.atomic():
            _vies_store(payer.pk, result)
        raise BillingError(_("VIES says the VAT number %(number)s is not valid.") % {"number": payer.vat_number},
                           code="vies_invalid")
    with transaction.atomic():
        if result is not None:
            _vies_store(payer.pk, result)
        payer = _payer_for_staff(payer)
        payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.VERIFIED, "", timezone.now()
        payer.save(update_fields=["verification_status", "verification_note", "verified_at"])
        activity_record(action="billing.payer_verified", customer=payer.customer, actor=staff, visible_to_customer=False,
                        details={**_payer_audit_details(payer), "vies": result.status if result else ""})
        return payer


def _vies_ask(payer: Payer):
    """VIES's answer on the payer's EU VAT number; None when it has none (nothing to ask)."""
    if payer.is_profile or not vat.is_eu_vat_number(payer.vat_number):
        return None
    return vat.vies_check(payer.vat_number)


def _vies_store(payer_id: int, result) -> None:
    fields = {"vies_status": result.status, "vies_checked_at": result.checked_at}
    if result.status != vat.UNAVAILABLE:  # keep the last real consultation while VIES is down
        fields["vies_consultation_number"] = result.consultation_number
    Payer.objects.filter(pk=payer_id).update(**fields)


def payer_vies_recheck(*, payer: Payer) -> str:
    """Ask VIES again (beat `billing-vies-recheck`). A verified company VIES now calls invalid goes back to
    awaiting verification, which ends its reverse charge on new invoices. Returns the status stored."""
    result = _vies_ask(payer)
    if result is None:
        return ""
    with transaction.atomic():
        _vies_store(payer.pk, result)
        if result.status == vat.INVALID:
            locked = Payer.objects.select_for_update().get(pk=payer.pk)
            if locked.verification_status == Payer.Verification.VERIFIED:
                locked.verification_status, locked.verified_at = Payer.Verification.PENDING, None
                locked.verification_note = "VIES: VAT number not valid"
                locked.save(update_fields=["verification_status", "verified_at", "verification_note"])
                activity_record(action="billing.payer_vies_invalid", customer=locked.customer, actor=None,
                                visible_to_customer=False, details=_payer_audit_details(locked))
    return result.status


def payers_vies_recheck() -> int:
    """Company payers with an EU VAT number whose last VIES answer was `unavailable`, or never asked."""
    payers = (Payer.objects.filter(payer_type=Payer.Type.COMPANY, is_profile=False).exclude(vat_number="")
              .filter(Q(vies_status__in=["", vat.UNAVAILABLE])).exclude(verification_status=Payer.Verification.REJECTED))
    return sum(1 for payer in payers.order_by("pk") if payer_vies_recheck(payer=payer) in (vat.VALID, vat.INVALID))


@transaction.atomic
def payer_reject(*, payer: Payer, staff, reason: str) -> Payer:
    if not reason.strip():
        raise BillingError(_("A reason is required."))
    payer = _payer_for_staff(payer)
    payer.verification_status, payer.verification_note, payer.verified_at = Payer.Verification.REJECTED, reason.strip()[:255], None
    payer.save(update_fields=["verification_status", "verification_note", "verified_at"])
    activity_record(action="billing.payer_rejected", customer=payer.customer, actor=staff, visible_to_customer=False,
                    details={**_payer_audit_details(payer), "reason": payer.verification_note})
    return payer


@transaction.atomic
def payer_country_approve(*, payer: Payer, staff) -> Payer:
    """Staff saw evidence (e.g. a bank or billing address) that the payer is in its stated country,
    which differs from the profile's: from now on that country decides the payer's invoices' tax."""
    payer = Payer.objects.select_for_update(of=("self",)).select_related("customer").get(pk=payer.pk)
    if payer.is_profile or not payer.country:
        raise BillingError(_("Only a payer with its own country is approved."), code="no_country")
    payer.country_approved_at = timezone.now()
    payer.save(update_fields=["country_approved_at"])
    activity_record(action="billing.payer_country_approved", customer=payer.customer, actor=staff, visible_to_customer=False,
                    details={**_payer_audit_details(payer), "country": payer.country})
    return payer


def invoice_payment_gate_check(invoice: Invoice) -> None:
    blockers = invoice_payment_blockers(invoice)
    if blockers:
        raise PaymentBlocked(blockers)
