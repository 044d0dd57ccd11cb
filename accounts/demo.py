"""Demo data for accounts: a trusted finance user next to the demo owner (same password)."""
import os

from .models import User


def seed(*, customer, owner, stdout):
    password = os.environ.get("DEMO_PASSWORD", "demo-customer-2026")
    user = User(username="demo-finance", email="finance@example.com", first_name="Fiona", last_name="Demo",
                customer=customer, role=User.Role.FINANCE, email_verified=True)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    stdout.write(f"  Trusted user (finance role): demo-finance / {password}")
