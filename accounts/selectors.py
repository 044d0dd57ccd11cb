import functools
import zoneinfo
from collections.abc import Iterable

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from core.compiled import ROW_COUNT, STAND_IN, STAND_IN_2, CompiledQuery, CompiledRows

from .models import Customer, PhoneVerification, User


_FIRST_OWNER = CompiledQuery(lambda customer_id: User.objects.filter(customer_id=customer_id, role=User.Role.OWNER).order_by("pk")[:1],
                             customer_id=STAND_IN)


def customer_owners(*, customers: Iterable[Customer | None]) -> dict[int, User | None]:
    """The first owner login of each customer (by pk), in one query for the ones not loaded yet;
    remembered on each instance, where `Customer.__str__` and later calls look first. A list page
    calls it once for its rows instead of one query per row."""
    customers = [customer for customer in customers if customer is not None]
    waiting: dict[int, list[Customer]] = {}
    for customer in customers:
        if getattr(customer, "_owner_cache", None) is None:
            waiting.setdefault(customer.pk, []).append(customer)
    if len(waiting) == 1:  # a page's own customer (the payment gate, payer details): compiled once
        (customer_id, instances), = waiting.items()
        for owner in _FIRST_OWNER(customer_id=customer_id):
            for customer in instances:
                customer._owner_cache = owner
    elif waiting:
        # Highest pk first, so the lowest (the first owner) is assigned last.
        owners = User.objects.filter(customer_id__in=list(waiting), role=User.Role.OWNER).order_by("customer_id", "-pk")
        for owner in owners:
            for customer in waiting[owner.customer_id]:
                customer._owner_cache = owner
    return {customer.pk: getattr(customer, "_owner_cache", None) for customer in customers}


def customer_owner(*, customer: Customer) -> User | None:
    """The first owner login; remembered on the instance (one query per request, shared with display_name)."""
    return customer_owners(customers=[customer])[customer.pk]


def payment_blockers(customer: Customer) -> list[dict]:
    """What stops this customer paying: each item has a message and a link to fix it.

    Billing refuses payment while the list is non-empty; the settings page shows it as a banner.
    """
    owner = customer_owner(customer=customer)
    settings_url = reverse("accounts:settings")
    blockers: list[dict] = []
    missing = []
    if owner is None or not owner.last_name.strip():
        missing.append(_("last name"))
    if owner is None or not owner.first_name.strip():
        missing.append(_("first name"))
    if owner is None or not owner.email.strip():
        missing.append(_("email"))
    if not customer.city.strip():
        missing.append(_("city"))
    if not customer.street.strip():
        missing.append(_("address"))
    for field in missing:
        blockers.append({"code": "missing_field", "field": str(field), "message": _("Fill in your %(field)s.") % {"field": field}, "url": settings_url})
    if customer.profile_type == Customer.ProfileType.COMPANY and customer.verification_status != Customer.Verification.VERIFIED:
        if customer.verification_status == Customer.Verification.REJECTED:
            message = _("Company verification was rejected: %(note)s") % {"note": customer.verification_note or "-"}
        else:
            message = _("Your company details are awaiting verification by our staff.")
        blockers.append({"code": "company_unverified", "field": "", "message": message, "url": settings_url})
    return blockers


def activity_for(*, customer: Customer, user: User):
    """The customer's activity log, newest first. Owners see everything; trusted users their own actions."""
    return _activity(customer.pk, None if user.role == User.Role.OWNER else user.pk)


def _activity(customer_id: int, actor_id: int | None):
    from .models import ActivityEvent

    events = ActivityEvent.objects.filter(customer_id=customer_id, visible_to_customer=True).select_related("actor")
    if actor_id is not None:
        events = events.filter(actor_id=actor_id)
    return events.order_by("-created_at", "-pk")


def _activity_count(customer_id: int, actor_id: int | None):
    return _activity(customer_id, actor_id).order_by().annotate(n=ROW_COUNT).values_list("n")


# activity_for()'s rows and count for the Activity page, compiled once per shape (everything, or one actor's).
_ACTIVITY_ROWS = {False: CompiledQuery(lambda customer_id: _activity(customer_id, None), customer_id=STAND_IN),
                  True: CompiledQuery(_activity, customer_id=STAND_IN, actor_id=STAND_IN_2)}
_ACTIVITY_COUNTS = {False: CompiledQuery(lambda customer_id: _activity_count(customer_id, None), customer_id=STAND_IN),
                    True: CompiledQuery(_activity_count, customer_id=STAND_IN, actor_id=STAND_IN_2)}


def activity_page_rows(*, customer: Customer, user: User) -> tuple[int, CompiledRows]:
    """activity_for() as the Activity page pages it: (how many, rows for a Paginator whose count is set)."""
    own = user.role != User.Role.OWNER
    values = {"customer_id": customer.pk, **({"actor_id": user.pk} if own else {})}
    return _ACTIVITY_COUNTS[own](**values)[0][0], CompiledRows(_ACTIVITY_ROWS[own], **values)


def previous_login(*, user: User):
    """The login before the current one (IP and time), or None."""
    from .models import ActivityEvent

    return ActivityEvent.objects.filter(actor=user, action="login").order_by("-created_at", "-pk")[1:2].first()


def customer_users(*, customer: Customer):
    return customer.users.order_by("-is_active", "pk")


def customer_user_get(*, customer: Customer, user_id: int) -> User:
    from django.shortcuts import get_object_or_404

    return get_object_or_404(customer.users, pk=user_id)


# --- Policies, personal data, social logins ---------------------------------------------------------------

def policies_current():
    """The newest published version of each document (privacy policy, terms)."""
    from .models import PolicyVersion

    latest = (PolicyVersion.objects.filter(published_at__isnull=False).order_by("kind", "-version")
              .distinct("kind").values("pk"))
    return PolicyVersion.objects.filter(pk__in=latest).order_by("kind")


def policies_pending_for(*, user: User):
    """Current versions this user has not accepted yet (one query)."""
    return policies_current().exclude(acceptances__user=user)


def topbar_policies_pending(request, customer) -> list:
    """Top-bar provider (the review banner of base.html): the versions the user has not accepted."""
    return list(policies_pending_for(user=request.user))


def policy_current(*, kind: str):
    from django.shortcuts import get_object_or_404

    return get_object_or_404(policies_current(), kind=kind)


def _policies_current_for(user_id: int):
    from django.db.models import OuterRef, Subquery

    from .models import PolicyAcceptance, PolicyVersion

    accepted = PolicyAcceptance.objects.filter(user_id=user_id, policy=OuterRef("pk")).values("accepted_at")[:1]
    titles = [field.name for field in PolicyVersion._meta.concrete_fields
              if field.name == "title" or field.name.startswith("title_")]
    return (policies_current().annotate(user_accepted_at=Subquery(accepted))
            .only("id", "kind", "version", "published_at", *titles))


_POLICIES_CURRENT_FOR = CompiledQuery(_policies_current_for, user_id=STAND_IN)


def policies_current_for(*, user: User) -> list:
    """policies_current() for the Privacy page, each with `user_accepted_at`: when this user accepted it (None:
    not yet), in one query compiled once per process (the ORM spent ~1 ms of CPU building and compiling the
    DISTINCT ON and acceptance subqueries). The page's fields are loaded (kind, version, titles,
    published_at); the texts load only if read."""
    return _POLICIES_CURRENT_FOR(user_id=user.pk)


_privacy_requests_sql: list[str] = []
# In the models' field order (Model.from_db reads values in that order).
_EXPORT_FIELDS = ("id", "requested_by_id", "status", "created_at", "expires_at", "size")
_DELETION_FIELDS = ("id", "status", "created_at", "staff_note")


def privacy_requests_for(*, customer: Customer, limit: int = 5) -> tuple[list, object]:
    """The Privacy page's requests in one statement written once per process: the customer's `limit` latest
    data exports and its latest deletion request (None), each newest first as the models order them, with the
    fields the page reads (the others load on access). Written as SQL, not a core.compiled query: the two
    lateral subqueries (one round trip, whether or not there are exports) are not a queryset."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connection

    from .models import DataExport, DeletionRequest

    if not _privacy_requests_sql:
        qn = connection.ops.quote_name

        def latest(model, fields, count, prefix: str) -> str:  # the model's ordering: newest first
            by_attname = {field.attname: field for field in model._meta.concrete_fields}
            if [name for name in by_attname if name in fields] != list(fields):
                raise ImproperlyConfigured(f"{model.__name__}: list the fields in the model's order")
            columns = ", ".join(f"{qn(by_attname[name].column)} AS {qn(prefix + name)}" for name in fields)
            created, pk, customer_column = (qn(by_attname[name].column) for name in ("created_at", "id", "customer_id"))
            return (f"SELECT {columns} FROM {qn(model._meta.db_table)} WHERE {customer_column} = %(customer)s"
                    f" ORDER BY {created} DESC, {pk} DESC LIMIT {count}")

        deletion = latest(DeletionRequest, _DELETION_FIELDS, 1, "d_")
        exports = latest(DataExport, _EXPORT_FIELDS, "%(limit)s", "e_")
        _privacy_requests_sql.append(
            f"SELECT d.*, e.* FROM (SELECT 1) AS one LEFT JOIN LATERAL ({deletion}) AS d ON TRUE"
            f" LEFT JOIN LATERAL ({exports}) AS e ON TRUE ORDER BY e.{qn('e_created_at')} DESC, e.{qn('e_id')} DESC")
    with connection.cursor() as cursor:
        cursor.execute(_privacy_requests_sql[0], {"customer": customer.pk, "limit": limit})
        rows = cursor.fetchall()
    deletion_size = len(_DELETION_FIELDS)
    first = rows[0]  # one row at least (the LEFT JOINs)
    deletion = (DeletionRequest.from_db(connection.alias, _DELETION_FIELDS, first[:deletion_size])
                if first[0] is not None else None)
    exports = [DataExport.from_db(connection.alias, _EXPORT_FIELDS, row[deletion_size:])
               for row in rows if row[deletion_size] is not None]
    return exports, deletion


def data_export_download(*, user: User, export_id: int):
    """A ready, unexpired export requested by this very user; anything else is a 404."""
    from django.http import Http404
    from django.utils import timezone

    from .models import DataExport

    export = DataExport.objects.filter(pk=export_id, requested_by=user, customer_id=user.customer_id,
                                       status=DataExport.Status.READY, expires_at__gt=timezone.now()).first()
    if export is None or not export.file:
        raise Http404
    return export


def social_provider_name(provider_id: str) -> str:
    """"Google", "Facebook": from allauth's provider registry (works even if the app is unconfigured now)."""
    from allauth.socialaccount.providers import registry

    try:
        return registry.get_class(provider_id).name
    except Exception:  # a provider removed from INSTALLED_APPS
        return provider_id.capitalize()


def _social_accounts(user_id: int):
    from allauth.socialaccount.models import SocialAccount

    return SocialAccount.objects.filter(user_id=user_id).order_by("provider", "pk")


_SOCIAL_ACCOUNTS = CompiledQuery(_social_accounts, user_id=STAND_IN)  # the Security page reads it on every view


def social_accounts_for(*, user: User) -> list:
    accounts = _SOCIAL_ACCOUNTS(user_id=user.pk)
    for account in accounts:
        account.provider_name = social_provider_name(account.provider)
    return accounts


def social_providers(request) -> list:
    """Providers with credentials configured (Google, Facebook); none configured hides the feature."""
    from allauth.socialaccount.adapter import get_adapter

    return sorted(get_adapter().list_providers(request), key=lambda provider: provider.id)


def otp_enabled(user: User) -> bool:
    """The login has a confirmed second factor (TOTP or recovery codes), so logging in asks for a code."""
    from django_otp import user_has_device

    return user_has_device(user, confirmed=True)


def _security_overview(user_id: int):
    from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery, Value
    from django.db.models.functions import Coalesce
    from django_otp import device_classes
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    confirmed = {f"confirmed_{index}": Exists(model.objects.filter(user=OuterRef("pk"), confirmed=True))
                 for index, model in enumerate(device_classes())}
    tokens = (StaticToken.objects.filter(device__user=OuterRef("pk")).order_by().values("device__user")
              .annotate(count=Count("pk")).values("count"))
    setup = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=False).order_by("pk").values("pk")[:1]
    return (User.objects.filter(pk=user_id)
            .annotate(setup_id=Subquery(setup),
                      recovery_left=Coalesce(Subquery(tokens, output_field=IntegerField()), Value(0)), **confirmed)
            .values_list("setup_id", "recovery_left", *confirmed))


_SECURITY_OVERVIEW = CompiledQuery(_security_overview, user_id=STAND_IN)


def security_overview(*, user: User) -> dict:
    """The Security page's second-factor facts in one query: `otp_enabled` (as otp_enabled(): a confirmed
    device of any django-otp device model), `setup_id` (the user's unconfirmed TOTP device, the oldest,
    as `.filter(confirmed=False).first()`; None) and `recovery_left` (recovery codes on all the user's
    static devices). Compiled once per process: building and compiling its four subqueries through the
    ORM cost as much CPU as the four queries it replaces (~1.7 ms)."""
    setup_id, recovery_left, *confirmed = _SECURITY_OVERVIEW(user_id=user.pk)[0]
    return {"otp_enabled": any(confirmed), "setup_id": setup_id, "recovery_left": recovery_left}


def phone_verification_pending(*, user: User) -> PhoneVerification | None:
    """The live code sent to the user's current number, if one can still be entered."""
    from django.conf import settings
    from django.utils import timezone

    return (user.phone_verifications.filter(verified_at__isnull=True, expires_at__gt=timezone.now(), phone=user.phone,
                                            attempts__lt=settings.PHONE_CODE_MAX_ATTEMPTS).first())


def invitation_user(*, token: str) -> User:
    """The invited login an invitation link is for, while it can still set its password; else a
    `ValidationError` saying why (expired, invalid, used)."""
    from django.core import signing
    from django.core.exceptions import ValidationError
    from django.utils.translation import gettext

    from .tokens import read_invitation_token

    try:
        user_id = read_invitation_token(token)
    except signing.SignatureExpired:
        raise ValidationError(gettext("This invitation has expired. Ask the account owner to send a new one."),
                              code="expired")
    except signing.BadSignature:
        raise ValidationError(gettext("This invitation link is invalid or has already been used."), code="invalid")
    user = User.objects.select_related("customer").filter(pk=user_id, is_active=True).first()
    if user is None or user.has_usable_password():
        raise ValidationError(gettext("This invitation link is invalid or has already been used."), code="invalid")
    return user


@functools.cache
def available_time_zones() -> frozenset[str]:
    """IANA zone names from the system's zoneinfo (read once per process)."""
    return frozenset(zoneinfo.available_timezones())


def login_ip_blocked(ip: str) -> bool:
    """Too many failed logins from `ip` over all usernames within the lockout window (password spraying)."""
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.conf import settings
    from django.db.models import Sum
    from django.utils import timezone

    if not ip:
        return False
    since = timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME)
    failures = AccessAttempt.objects.filter(ip_address=ip, attempt_time__gte=since).aggregate(
        total=Sum("failures_since_start"))["total"] or 0
    return failures >= settings.LOGIN_IP_FAILURE_LIMIT
