"""Reverse DNS against a real PowerDNS Authoritative server (Debian's pdns-server with the sqlite3
backend) on loopback, driven through its HTTP API."""
import os
import shutil
import sqlite3
import subprocess

import pytest
import requests
from django.urls import reverse

from accounts.models import ActivityEvent, User
from accounts.tests.factories import UserFactory
from orders.models import IpAddress
from orders.reverse_dns import hostname_clean
from django.core.exceptions import ValidationError
from core.tests.net import wait_for_port

from .test_server_control import server, setting_up  # noqa: F401

pytestmark = pytest.mark.django_db
SCHEMA = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"
API_KEY = "test-pdns-key"


@pytest.fixture(scope="module")
def pdns(tmp_path_factory):
    """pdns_server on 127.0.0.1 (DNS and API ports per test database), zone 10.in-addr.arpa."""
    if not shutil.which("pdns_server") or not os.path.exists(SCHEMA):
        pytest.skip("pdns-server and pdns-backend-sqlite3 are not installed (make test installs them)")
    base = tmp_path_factory.mktemp("pdns")
    database = base / "pdns.sqlite3"
    with sqlite3.connect(database) as db:
        db.executescript(open(SCHEMA).read())
    offset = int(os.environ.get("TEST_REDIS_DB", "0"))
    dns_port, api_port = 15300 + offset, 18100 + offset
    server_process = subprocess.Popen([
        "pdns_server", "--no-config", "--daemon=no", "--guardian=no", "--disable-syslog", "--write-pid=no",
        f"--socket-dir={base}", "--local-address=127.0.0.1", f"--local-port={dns_port}", "--launch=gsqlite3",
        f"--gsqlite3-database={database}", "--api=yes", f"--api-key={API_KEY}", "--webserver=yes",
        "--webserver-address=127.0.0.1", f"--webserver-port={api_port}", "--webserver-allow-from=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(api_port, what="pdns_server")
    url = f"http://127.0.0.1:{api_port}"
    created = requests.post(f"{url}/api/v1/servers/localhost/zones", headers={"X-API-Key": API_KEY}, timeout=5, json={
        "name": "10.in-addr.arpa.", "kind": "Native", "nameservers": ["ns1.example.net."]})
    assert created.status_code == 201, created.text
    yield url
    server_process.terminate()
    server_process.wait(timeout=10)


@pytest.fixture
def dns_settings(settings, pdns):
    settings.PDNS_API_URL, settings.PDNS_API_KEY = pdns, API_KEY
    settings.PDNS_REVERSE_ZONES = "10.in-addr.arpa"
    return pdns


def ptr_in_pdns(url, address):
    name = ".".join(reversed(address.split("."))) + ".in-addr.arpa."
    zone = requests.get(f"{url}/api/v1/servers/localhost/zones/10.in-addr.arpa.", headers={"X-API-Key": API_KEY},
                        timeout=5).json()
    return [r["content"] for rrset in zone["rrsets"] if rrset["name"] == name and rrset["type"] == "PTR"
            for r in rrset["records"]]


def test_the_owner_sets_and_removes_the_ptr_of_the_servers_address(client, owner, server, dns_settings):  # noqa: F811
    address = IpAddress.objects.get(order=server).address
    assert address.startswith("10.")
    client.force_login(owner)
    url = reverse("orders:server_reverse_dns", args=[server.pk])
    assert client.post(url, {"address": address, "hostname": "Mail.Example.COM."}).status_code == 302
    assert ptr_in_pdns(dns_settings, address) == ["mail.example.com."]
    page = client.get(url).content.decode()
    assert 'value="mail.example.com"' in page
    event = ActivityEvent.objects.get(action="reverse_dns_set")
    assert (event.actor, event.details["address"], event.details["hostname"]) == (owner, address, "mail.example.com")

    bad = client.post(url, {"address": address, "hostname": "not a host!"})
    assert bad.status_code == 400 and "Enter a full host name" in bad.content.decode()
    assert ptr_in_pdns(dns_settings, address) == ["mail.example.com."]
    assert client.post(url, {"address": address, "hostname": ""}).status_code == 302
    assert ptr_in_pdns(dns_settings, address) == []


def test_someone_elses_address_is_refused_and_others_get_404_or_403(client, owner, customer, server, dns_settings):  # noqa: F811
    address = IpAddress.objects.get(order=server).address
    pool = IpAddress.objects.get(order=server).pool
    foreign = IpAddress.objects.create(pool=pool, address="10.1.0.250")  # another customer's, or nobody's
    client.force_login(owner)
    url = reverse("orders:server_reverse_dns", args=[server.pk])
    refused = client.post(url, {"address": foreign.address, "hostname": "evil.example.com"})
    assert refused.status_code == 400 and "does not belong to this service" in refused.content.decode()
    assert ptr_in_pdns(dns_settings, foreign.address) == []

    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    assert client.post(url, {"address": address, "hostname": "x.example.com"}).status_code == 404
    client.force_login(UserFactory(customer=customer, role=User.Role.FINANCE))
    assert client.get(url).status_code == 403
    assert client.post(url, {"address": address, "hostname": "x.example.com"}).status_code == 403
    assert ptr_in_pdns(dns_settings, address) == []
    assert not ActivityEvent.objects.filter(action="reverse_dns_set").exists()


@pytest.mark.parametrize("value", ["localhost", "-a.example.com", "a..example.com", "1.2.3.4", "x" * 64 + ".com",
                                   "a_b.example.com"])
def test_host_names_are_validated(value):
    with pytest.raises(ValidationError):
        hostname_clean(value)
