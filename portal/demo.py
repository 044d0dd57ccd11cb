"""Demo: the staff user `admin` gets a TOTP device with a documented secret (README), so /admin/ works
with a second factor out of the box. Never use this secret outside the demo."""
from accounts.models import User

DEMO_ADMIN_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def seed(*, customer, owner, stdout) -> None:
    from .management.commands.staff_totp import staff_totp_enrol

    admin = User.objects.filter(is_staff=True, customer__isnull=True).order_by("pk").first()
    if admin is not None:
        staff_totp_enrol(user=admin, secret_b32=DEMO_ADMIN_TOTP_SECRET)
        stdout.write(f"  Staff TOTP secret ({admin.username}): {DEMO_ADMIN_TOTP_SECRET}")


def refresh(*, stdout) -> None:
    """A demo database seeded before /admin/ required a second factor gets the documented device."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from .management.commands.staff_totp import staff_totp_enrol

    admin = User.objects.filter(is_staff=True, customer__isnull=True).order_by("pk").first()
    if admin is not None and not TOTPDevice.objects.filter(user=admin, confirmed=True).exists():
        staff_totp_enrol(user=admin, secret_b32=DEMO_ADMIN_TOTP_SECRET)
        stdout.write(f"  Staff TOTP secret ({admin.username}): {DEMO_ADMIN_TOTP_SECRET}")
