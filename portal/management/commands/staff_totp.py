"""Enrol a staff user's authenticator app: `manage.py staff_totp <username> [--secret BASE32]`.

Creates (or replaces) the user's confirmed TOTP device and prints the secret and the otpauth:// URI
to add to an authenticator app. Staff need it to log in to /admin/ (ADMIN_REQUIRE_OTP).
"""
from base64 import b32decode, b32encode

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

DEVICE_NAME = "Staff authenticator"


def staff_totp_enrol(*, user: User, secret_b32: str | None = None) -> TOTPDevice:
    if not user.is_staff:
        raise CommandError(f"{user.username} is not a staff user.")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, name=DEVICE_NAME).delete()
        device = TOTPDevice(user=user, name=DEVICE_NAME, confirmed=True)
        if secret_b32:
            try:
                device.key = b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8)).hex()
            except ValueError:
                raise CommandError("The secret must be base32.") from None
        device.save()
    return device


class Command(BaseCommand):
    help = "Enrol a staff user's TOTP authenticator (prints the secret and otpauth URI)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--secret", help="base32 secret to use (e.g. a documented demo secret); random if omitted")

    def handle(self, *args, username, secret=None, **options):
        user = User.objects.filter(username__iexact=username).first()
        if user is None:
            raise CommandError(f"No user {username}.")
        device = staff_totp_enrol(user=user, secret_b32=secret)
        self.stdout.write(f"secret: {b32encode(device.bin_key).decode().rstrip('=')}\nuri: {device.config_url}")
