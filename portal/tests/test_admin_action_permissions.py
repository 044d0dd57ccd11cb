"""Every admin action declares the permission it needs; a view-only staff user can run none of them."""
from datetime import datetime, timezone as dt_timezone

import pytest
import time_machine
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from accounts.models import Customer, DeletionRequest, PolicyVersion, User
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import ContractVersion, Payer
from notifications.models import EmailOutbox
from notifications.telegram.models import TelegramOutbox
from orders.models import IpPool, Location

FROZEN = datetime(2026, 6, 15, 10, 0, tzinfo=dt_timezone.utc)


def registered_actions():
    for model, model_admin in admin.site._registry.items():
        for func, name, _description in model_admin._get_base_actions():
            yield model, model_admin, func, name


def test_every_admin_action_declares_a_permission_the_admin_can_check():
    undeclared, uncheckable = [], []
    for model, model_admin, func, name in registered_actions():
        permissions = getattr(func, "allowed_permissions", None)
        if not permissions:
            undeclared.append(f"{model._meta.label}.{name}")
            continue
        uncheckable += [f"{model._meta.label}.{name}: {perm}" for perm in permissions
                        if not callable(getattr(model_admin, f"has_{perm}_permission", None))]
    assert undeclared == []
    assert uncheckable == []


def view_only_staff() -> User:
    user = StaffUserFactory(is_superuser=False)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return User.objects.get(pk=user.pk)


def action_rows():
    """What demo data lacks, so every admin that has actions has a row an action could change."""
    customer = Customer.objects.exclude(users__username="admin").first()
    owner = customer.users.get(role=User.Role.OWNER)
    other = UserFactory(customer__profile_type=Customer.ProfileType.COMPANY, customer__company_name="ACME",
                        customer__verification_status=Customer.Verification.PENDING).customer
    DeletionRequest.objects.create(customer=other, requested_by=other.users.first(), reason="leaving")
    PolicyVersion.objects.create(kind=PolicyVersion.Kind.TERMS, version=99, title="Terms", text="Draft")
    ContractVersion.objects.create(version=99, title="Agreement", text="Draft")
    Payer.objects.create(customer=customer, payer_type=Payer.Type.COMPANY, company_name="Payer Ltd",
                         country="NL", verification_status=Payer.Verification.PENDING)
    IpPool.objects.create(name="Pool", location=Location.objects.first())
    EmailOutbox.objects.create(customer=customer, recipient="a@example.com", subject="s",
                               body_text="b", status=EmailOutbox.Status.FAILED)
    TelegramOutbox.objects.create(customer=customer, chat_id=1, text="t", status=TelegramOutbox.Status.FAILED)
    return owner


def snapshot() -> dict:
    """Every row of every table the actions could touch (sessions change with any request)."""
    return {model._meta.label: list(model.objects.order_by("pk").values())
            for model in apps.get_models() if model._meta.managed and model._meta.app_label not in {"sessions", "axes"}}


@pytest.mark.django_db
def test_a_view_only_staff_user_is_offered_no_action_and_posting_each_changes_nothing(client):
    with time_machine.travel(FROZEN, tick=False):
        call_command("seed_demo", stdout=open("/dev/null", "w"))
        action_rows()
    user = view_only_staff()
    request = RequestFactory().get("/admin/")
    request.user = user
    offered = {f"{model._meta.label}.{name}" for model, model_admin in admin.site._registry.items()
               for name in model_admin.get_actions(request)}
    assert offered == set()

    client.force_login(user)
    before = snapshot()
    posted = 0
    with time_machine.travel(FROZEN, tick=False):
        for model, model_admin, func, name in registered_actions():
            if not model._meta.managed:  # no rows (the reports page)
                continue
            first = model_admin.get_queryset(request).order_by("pk").first()
            if first is None:
                continue
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            response = client.post(url, {"action": name, ACTION_CHECKBOX_NAME: [str(first.pk)], "select_across": "1",
                                         "index": "0", "apply": "1", "post": "yes", "reason": "r", "ip": "192.0.2.1",
                                         "addresses": "192.0.2.77", "candidate": "x", "days": "3",
                                         "amount": "5", "nonce": "n", "bank_reference": "b", "received_on": "2026-06-15"})
            assert response.status_code in {200, 302, 403}, f"{model._meta.label}.{name}"
            posted += 1
    assert posted >= 25  # the demo plus action_rows() give almost every action a row to act on
    assert snapshot() == before
