"""Privacy policy and terms: numbered versions, publishing, and each user's acceptance."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.topbar import topbar_changed, topbar_changed_all

from ..models import PolicyAcceptance, PolicyVersion, User
from .activity import activity_record


@transaction.atomic
def policy_version_create(*, kind: str, title: str, text: str, changes: str = "", staff: User | None = None,
                          title_ru: str = "", text_ru: str = "", changes_ru: str = "") -> PolicyVersion:
    """A new draft with the next version number of its kind (numbers never repeat, drafts included)."""
    from django.db import connection

    if kind not in PolicyVersion.Kind.values:
        raise ValidationError({"kind": _("Unknown document.")})
    with connection.cursor() as cursor:  # serializes numbering per kind; released at commit
        cursor.execute("SELECT pg_advisory_xact_lock(8101, %s)", [PolicyVersion.Kind.values.index(kind)])
    last = PolicyVersion.objects.filter(kind=kind).order_by("-version").values_list("version", flat=True).first()
    policy = PolicyVersion(kind=kind, version=(last or 0) + 1, title=title.strip(), text=text.strip(),
                           changes=changes.strip(), title_ru=title_ru.strip(), text_ru=text_ru.strip(),
                           changes_ru=changes_ru.strip(), created_by=staff if staff is not None and staff.pk else None)
    policy.full_clean()
    policy.save()
    return policy


@transaction.atomic
def policy_publish(*, policy: PolicyVersion, staff: User) -> PolicyVersion:
    """From now on this version is current; every customer user sees the review banner until accepting it."""
    locked = PolicyVersion.objects.select_for_update().get(pk=policy.pk)
    if locked.published_at is not None:
        raise ValidationError(_("This version is already published."), code="published")
    newer = PolicyVersion.objects.filter(kind=locked.kind, version__gt=locked.version,
                                         published_at__isnull=False).exists()
    if newer:
        raise ValidationError(_("A newer version of this document is already published."), code="outdated")
    locked.published_at = timezone.now()
    locked.save(update_fields=["published_at"])
    topbar_changed_all()  # every user's review banner
    activity_record(action="policy_published", actor=staff, visible_to_customer=False,
                    details={"kind": locked.kind, "version": locked.version})
    return locked


@transaction.atomic
def policies_accept(*, user: User, policy_ids: list[int], ip: str | None = None) -> list[PolicyVersion]:
    """Record acceptance of the given current versions (the ones the user was shown); returns what was new."""
    from .. import selectors

    current = {policy.pk: policy for policy in selectors.policies_current()}
    stale = [pk for pk in policy_ids if pk not in current]
    if stale or not policy_ids:
        # A newer version was published while the page was open: the user must read that one.
        raise ValidationError(_("The document was updated meanwhile. Please review the current version."),
                              code="stale")
    # The user row serialises two accepts of the same user (double submit): each version is recorded once.
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    already = set(PolicyAcceptance.objects.filter(user=user, policy_id__in=policy_ids).values_list("policy_id", flat=True))
    accepted = [current[pk] for pk in sorted(set(policy_ids) - already)]
    PolicyAcceptance.objects.bulk_create([PolicyAcceptance(user=user, policy=policy, ip=ip or None) for policy in accepted])
    topbar_changed([user.customer_id])  # the review banner
    for policy in accepted:
        activity_record(action="policy_accepted", customer=user.customer, actor=user, ip=ip,
                        details={"kind": policy.kind, "version": policy.version})
    return accepted
