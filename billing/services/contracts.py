"""Contracts: publishing versions and recording their acceptance per payer."""

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.services.activity import activity_record

from ..models import ContractAcceptance, ContractVersion, Payer
from .errors import BillingError
from ..selectors import payer_details


@transaction.atomic
def contract_version_publish(*, version: ContractVersion, staff) -> ContractVersion:
    """Publish a draft: from now on it is the agreement customers accept, and its text is frozen."""
    version = ContractVersion.objects.select_for_update().get(pk=version.pk)
    if version.published_at is None:
        version.published_at = timezone.now()
        version.save(update_fields=["published_at"])
        activity_record(action="billing.contract_published", actor=staff, visible_to_customer=False,
                        details={"version": version.version, "title": version.title})
    return version


@transaction.atomic
def contract_accept(*, payer: Payer, version: ContractVersion, user, ip: str | None = None) -> ContractAcceptance:
    """Record that `user` accepted `version` for `payer` (time, IP). Accepting twice returns the first."""
    if version.published_at is None:
        raise BillingError(_("This contract version is not published."))
    if payer.archived_at is not None:
        raise BillingError(_("This payer is archived."))
    existing = ContractAcceptance.objects.filter(payer=payer, version=version).first()
    if existing is not None:
        return existing
    details = payer_details(payer)
    try:
        with transaction.atomic():
            acceptance = ContractAcceptance.objects.create(
                customer_id=payer.customer_id, payer=payer, version=version, user=user if user is not None and user.pk else None,
                ip=ip or None, payer_label=details.label[:255], payer_details=details.as_dict(),
            )
    except IntegrityError:  # a concurrent double click won
        return ContractAcceptance.objects.get(payer=payer, version=version)
    activity_record(action="billing.contract_accepted", customer=payer.customer, actor=user, ip=ip,
                    details={"version": version.version, "payer": details.label})
    return acceptance
