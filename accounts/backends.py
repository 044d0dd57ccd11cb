from django.contrib.auth.backends import ModelBackend

from core.compiled import STAND_IN, CompiledQuery

from .models import User


def login_identity(typed: str | None) -> str:
    """The login a typed username or email means, as the lockout counts it: spaces and case do not
    matter, and an account's email counts as its username (else each spelling got its own 5 guesses)."""
    typed = (typed or "").strip().lower()
    if "@" in typed:
        username = User.objects.filter(email__iexact=typed).order_by("pk").values_list("username", flat=True).first()
        return username.lower() if username else typed
    return typed


def axes_username(request, credentials) -> str:
    """AXES_USERNAME_CALLABLE: every spelling of one login shares one failure counter."""
    from django.conf import settings

    if credentials:
        typed = credentials.get(settings.AXES_USERNAME_FORM_FIELD)
    else:
        typed = getattr(request, "POST", {}).get(settings.AXES_USERNAME_FORM_FIELD)
    return login_identity(typed)


class UsernameOrEmailBackend(ModelBackend):
    """Log in with the username or the email address, both case-insensitive."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or password is None:
            return None
        field = "email__iexact" if "@" in username else "username__iexact"
        user = User.objects.select_related("customer").filter(**{field: username.strip()}).order_by("pk").first()
        if user is None:
            User().set_password(password)  # same work as a real check: no timing oracle
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    def get_user(self, user_id):
        found = _SESSION_USER(user_id=int(user_id))
        user = found[0] if found else None
        return user if user and self.user_can_authenticate(user) else None


# Every signed-in request's user with its customer: `.first()` of one fixed shape, compiled once (core.compiled)
# instead of built by the ORM on each request.
_SESSION_USER = CompiledQuery(lambda user_id: User.objects.select_related("customer").filter(pk=user_id).order_by("pk")[:1],
                              user_id=STAND_IN)
