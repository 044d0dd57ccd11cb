"""Demo data for accounts: a trusted finance user next to the demo owner (same password), and a
published privacy policy (v1 accepted, v2 not yet, so the review banner shows) and terms."""
import os

from .models import PolicyVersion, User
from .services.policies import policies_accept, policy_publish, policy_version_create

PRIVACY_V1 = """We process the personal data you give us (name, email address, phone, postal address, company
details) to provide and bill the hosting services you order, and to answer your support requests.

We keep invoices and payment records for as long as accounting law requires. You can export your data
and ask us to delete your account in Settings → Privacy and personal data."""

PRIVACY_V2 = PRIVACY_V1 + """

Server access logs (IP address, time, request) are kept for 30 days to protect the service from abuse."""

TERMS = """These terms govern the hosting services ordered through this portal. Services are prepaid for the
chosen period and renewed from your balance while auto-renewal is on. An unpaid service is suspended
after the grace period and terminated later; see the notices we send before each step."""


def seed(*, customer, owner, stdout):
    password = os.environ.get("DEMO_PASSWORD", "demo-customer-2026")
    user = User(username="demo-finance", email="finance@example.com", first_name="Fiona", last_name="Demo",
                customer=customer, role=User.Role.FINANCE, email_verified=True)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    stdout.write(f"  Trusted user (finance role): demo-finance / {password}")

    if PolicyVersion.objects.exists():
        return
    staff = User.objects.filter(is_superuser=True).order_by("pk").first()
    publish = lambda **fields: policy_publish(  # noqa: E731
        policy=policy_version_create(staff=staff, **fields), staff=staff)
    terms = publish(kind="terms", title="Terms of service", title_ru="Условия обслуживания", text=TERMS)
    privacy_v1 = publish(kind="privacy", title="Privacy policy", title_ru="Политика конфиденциальности", text=PRIVACY_V1)
    policies_accept(user=owner, policy_ids=[terms.pk, privacy_v1.pk], ip="127.0.0.1")
    publish(kind="privacy", title="Privacy policy", title_ru="Политика конфиденциальности", text=PRIVACY_V2,
            changes="Server access logs are now kept for 30 days.",
            changes_ru="Журналы доступа к серверам теперь хранятся 30 дней.")
    stdout.write("  Privacy policy v2 published: the demo owner sees the review banner")
