"""docs/api_client.py runs end to end against a live server."""
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.tests.factories import UserFactory
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_docs_client_walks_the_api(live_server, key_client, departments, place):
    owner = UserFactory()
    place(owner.customer)  # an unpaid invoice the balance cannot cover
    token = key_client(owner).token
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "api_client.py"), "--base", live_server.url, "--key", token],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"client {owner.customer_id}" in result.stdout and "not paid" in result.stdout
    ticket = Ticket.objects.get(customer=owner.customer)
    assert ticket.messages.count() == 2 and ticket.messages.last().attachments.count() == 1
