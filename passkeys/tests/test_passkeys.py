"""Passkey endpoints without a browser: challenges, methods and ownership."""
import json

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from passkeys.models import Passkey

pytestmark = pytest.mark.django_db


def test_verifying_without_a_fresh_challenge_is_refused(client):
    response = client.post(reverse("passkeys:login_verify"), json.dumps({"credential": {"rawId": "AAAA"}}),
                           content_type="application/json")
    assert response.status_code == 400 and "expired" in response.json()["error"]


def test_a_challenge_is_used_once(client):
    options = client.post(reverse("passkeys:login_options")).json()
    assert options["rpId"] and options["userVerification"] == "required"
    bogus = {"credential": {"rawId": "AAAA", "id": "AAAA", "type": "public-key", "response": {}}}
    first = client.post(reverse("passkeys:login_verify"), json.dumps(bogus), content_type="application/json")
    second = client.post(reverse("passkeys:login_verify"), json.dumps(bogus), content_type="application/json")
    assert first.json()["error"] == "This passkey cannot log you in."
    assert "expired" in second.json()["error"]


@pytest.mark.parametrize("name", ["passkeys:login_options", "passkeys:login_verify"])
def test_ceremony_endpoints_refuse_get(client, name):
    assert client.get(reverse(name)).status_code == 405


def test_options_need_a_csrf_token(owner_client_csrf):
    assert owner_client_csrf.post(reverse("passkeys:register_options")).status_code == 403


def test_another_users_passkey_cannot_be_removed(client):
    owner, other = UserFactory(), UserFactory()
    passkey = Passkey.objects.create(user=other, name="theirs", credential_id=b"\x01" * 16, public_key=b"k")
    client.force_login(owner)
    assert client.post(reverse("passkeys:delete", args=[passkey.pk])).status_code == 404
    assert Passkey.objects.filter(pk=passkey.pk).exists()


@pytest.fixture
def owner_client_csrf(db):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    return client


def test_erasure_deletes_passkeys_and_export_lists_them():
    from accounts.personal_data import exporters
    from accounts.services.deletion import customer_erase

    owner = UserFactory()
    Passkey.objects.create(user=owner, name="phone", credential_id=b"\x02" * 16, public_key=b"k")
    assert [row["name"] for row in exporters()["passkeys"](owner.customer)] == ["phone"]
    customer_erase(customer=owner.customer, actor=None)
    assert not Passkey.objects.exists()
