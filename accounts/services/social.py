"""Social logins (django-allauth): recording a linked provider, unlinking one."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import User
from .activity import security_event_record, translated_later


def social_account_link_record(*, user: User, provider: str, ip: str | None = None) -> None:
    with transaction.atomic():
        security_event_record(
            user=user, action="social_linked", ip=ip, details={"provider": provider},
            change=translated_later(gettext_lazy("Login with %(provider)s linked"), provider=provider))


@transaction.atomic
def social_account_unlink(*, user: User, account_id: int, ip: str | None = None) -> str:
    """Unlink one provider; refused while it is the only way to log in (no password, no other link)."""
    from allauth.socialaccount.models import SocialAccount

    locked = User.objects.select_for_update().get(pk=user.pk)  # two unlinks at once cannot both pass the check
    account = SocialAccount.objects.filter(user=locked, pk=account_id).first()
    if account is None:
        raise ValidationError(_("This login is not linked to your account."), code="not_found")
    others = SocialAccount.objects.filter(user=locked).exclude(pk=account.pk).exists()
    if not locked.has_usable_password() and not others:
        raise ValidationError(_("This is the only way to log in to your account. Set a password first "
                                "(use “Forgot your password?” on the login page)."), code="last_method")
    from ..selectors import social_provider_name

    provider = social_provider_name(account.provider)
    account.delete()
    security_event_record(user=locked, action="social_unlinked", ip=ip, details={"provider": provider},
                          change=translated_later(gettext_lazy("Login with %(provider)s unlinked"), provider=provider))
    return provider
