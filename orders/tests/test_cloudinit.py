"""cloud-init NoCloud documents: YAML written as JSON (no quoting surprises), the password only hashed."""
import json

from orders.provisioning import cloudinit


def config(**overrides):
    values = {"instance_id": "hp-order-7", "hostname": "web1.example.com", "root_password": "Correct-Horse-9",
              "ssh_keys": ["ssh-ed25519 AAAA key@x"], "ip": "192.0.2.10", "prefix_length": 26, "gateway": "192.0.2.1",
              "nameservers": ["192.0.2.53", "2001:db8::53"]}
    return cloudinit.SeedConfig(**{**values, **overrides})


def test_user_data_sets_hostname_key_and_a_sha512_hash_of_the_root_password():
    text = cloudinit.user_data(config())
    assert text.startswith("#cloud-config\n")
    document = json.loads(text.split("\n", 1)[1])
    assert (document["hostname"], document["fqdn"]) == ("web1", "web1.example.com")
    assert document["users"] == [{"name": "root", "ssh_authorized_keys": ["ssh-ed25519 AAAA key@x"]}]
    hashed = document["chpasswd"]["users"][0]["password"]
    assert hashed.startswith("$6$") and "Correct-Horse-9" not in text
    assert cloudinit.crypt.crypt("Correct-Horse-9", hashed) == hashed


def test_network_config_is_the_static_address_with_gateway_and_dns():
    document = json.loads(cloudinit.network_config(config()))
    assert document == {"version": 2, "ethernets": {"eth0": {
        "match": {"name": "e*"}, "addresses": ["192.0.2.10/26"], "routes": [{"to": "default", "via": "192.0.2.1"}],
        "nameservers": {"addresses": ["192.0.2.53", "2001:db8::53"]}}}}
    assert cloudinit.network_config(config(ip=None)) is None  # no pool address: DHCP from the node's network


def test_seed_iso_is_a_cidata_volume():
    data = cloudinit.seed_iso(config())
    assert data[32768 + 1:32768 + 6] == b"CD001"  # ISO 9660 primary volume descriptor
    assert b"CIDATA" in data[32768:34816].upper() and b"web1.example.com" in data
