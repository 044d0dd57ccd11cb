"""IP restriction: the parser (property-based) and its enforcement at login and on every request."""
import ipaddress

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from accounts.ip_allowlist import AllowlistError, ip_permitted, parse_allowlist
from accounts.models import ActivityEvent, Customer
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
addresses = st.one_of(v4, v6)
padding = st.sampled_from(["", " ", "\t", "  "])
comments = st.sampled_from(["", " # office", "# vpn", "\t#"])


@st.composite
def valid_entry(draw):
    """(line text, an address the line must permit)."""
    kind = draw(st.sampled_from(["single", "range", "cidr"]))
    address = draw(addresses)
    if kind == "single":
        return str(address), address
    if kind == "range":
        family = v4 if address.version == 4 else v6
        other = draw(family)
        low, high = sorted([address, other])
        inside = type(low)(draw(st.integers(int(low), int(high))))
        return f"{low}-{high}" if draw(st.booleans()) else f"{low} - {high}", inside
    prefix = draw(st.integers(0, address.max_prefixlen))
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network), address


@st.composite
def invalid_entry(draw):
    kind = draw(st.sampled_from(["reversed", "mixed", "garbage", "bad_prefix", "octet"]))
    if kind == "reversed":
        family = draw(st.sampled_from([v4, v6]))
        a, b = draw(family), draw(family)
        if a == b:
            b = type(a)(int(a) + 1) if int(a) < (2**a.max_prefixlen - 1) else type(a)(int(a) - 1)
        low, high = sorted([a, b])
        return f"{high}-{low}"
    if kind == "mixed":
        return f"{draw(v4)}-{draw(v6)}" if draw(st.booleans()) else f"{draw(v6)}-{draw(v4)}"
    if kind == "garbage":
        return draw(st.text(alphabet="xyzghq!@$%^&*", min_size=1, max_size=12))
    if kind == "bad_prefix":
        address = draw(addresses)
        return f"{address}/{draw(st.integers(address.max_prefixlen + 1, 300))}"
    return f"{draw(st.integers(256, 999))}.1.2.3"


@given(entries=st.lists(valid_entry(), min_size=1, max_size=8), pad=padding, comment=comments,
       blanks=st.lists(st.sampled_from(["", "   ", "# just a comment"]), max_size=3))
@hsettings(max_examples=200, deadline=None)
def test_valid_lists_parse_and_permit_their_addresses(entries, pad, comment, blanks):
    lines = [f"{pad}{text}{pad}{comment}" for text, _address in entries] + blanks
    text = "\n".join(lines)
    ranges = parse_allowlist(text)
    assert len(ranges) == len(entries)
    for _text, address in entries:
        assert ip_permitted(text, str(address))


@given(good=st.lists(valid_entry(), max_size=4), bad=invalid_entry(), position=st.integers(0, 4))
@hsettings(max_examples=200, deadline=None)
def test_invalid_line_is_reported_with_its_number(good, bad, position):
    lines = [text for text, _address in good]
    position = min(position, len(lines))
    lines.insert(position, f"  {bad}  ")
    with pytest.raises(AllowlistError) as caught:
        parse_allowlist("\n".join(lines))
    assert [error.line for error in caught.value.errors] == [position + 1]


@given(address=addresses)
def test_empty_or_comment_only_list_restricts_nothing(address):
    for text in ("", "\n\n", "# nothing here\n   \n"):
        assert parse_allowlist(text) == ()
        assert ip_permitted(text, str(address))


def test_examples_from_the_seed_and_edges():
    text = "192.15.3.2\n10.10.1.1\n192.168.0.1-192.168.0.10\n2001:db8::/32\n"
    assert ip_permitted(text, "192.168.0.5")
    assert ip_permitted(text, "192.168.0.10")
    assert not ip_permitted(text, "192.168.0.11")
    assert ip_permitted(text, "2001:db8::1")
    assert ip_permitted(text, "::ffff:10.10.1.1")  # IPv4-mapped IPv6 is the same client
    assert ip_permitted("::ffff:0:0", "::ffff:0:0")  # an entry written in mapped form admits that address
    assert not ip_permitted(text, "2001:db9::1")
    assert not ip_permitted(text, "not-an-ip")
    with pytest.raises(AllowlistError) as caught:
        parse_allowlist("10.0.0.1\n10.0.0.9-10.0.0.1\n\nfoo\n1.2.3.4-::1")
    assert [e.line for e in caught.value.errors] == [2, 4, 5]


# --- Enforcement -------------------------------------------------------------------------------------



def _restrict(user, text):
    Customer.objects.filter(pk=user.customer_id).update(ip_allowlist=text)


@pytest.mark.django_db
def test_allowed_address_passes_blocked_address_gets_403_page(client):
    user = UserFactory()
    client.force_login(user)
    _restrict(user, "203.0.113.0/24")
    assert client.get("/accounts/settings/profile/", REMOTE_ADDR="203.0.113.7").status_code == 200
    response = client.get("/accounts/settings/profile/", REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 403
    assert "198.51.100.1" in response.content.decode()
    assert "restricted" in response.content.decode()
    assert user.last_name not in response.content.decode()  # nothing of the account shown to that address
    # Logging out stays possible from anywhere.
    assert client.post("/accounts/logout/", REMOTE_ADDR="198.51.100.1").status_code == 302


@pytest.mark.django_db
def test_login_from_a_blocked_address_is_refused_and_recorded(client):
    user = UserFactory(username="fenced")
    _restrict(user, "10.0.0.1-10.0.0.20")
    response = client.post("/accounts/login/", {"username": "fenced", "password": DEFAULT_PASSWORD},
                           REMOTE_ADDR="10.0.0.99")
    assert response.status_code == 200
    assert "10.0.0.99" in response.content.decode() and "restricted" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert ActivityEvent.objects.filter(actor=user, action="login_failed", details__reason="ip_restricted").exists()
    response = client.post("/accounts/login/", {"username": "fenced", "password": DEFAULT_PASSWORD},
                           REMOTE_ADDR="10.0.0.5")
    assert response.status_code == 302


@pytest.mark.django_db
def test_forged_x_forwarded_for_never_bypasses_the_list(client, settings):
    user = UserFactory()
    client.force_login(user)
    _restrict(user, "203.0.113.7")
    settings.TRUSTED_PROXY_COUNT = 0
    # No proxy configured: the header is ignored, REMOTE_ADDR decides.
    assert client.get("/accounts/settings/profile/", REMOTE_ADDR="198.51.100.1",
                      HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 403
    # One trusted proxy (REMOTE_ADDR is the proxy): only the address it appended counts, not what the client wrote.
    settings.TRUSTED_PROXY_COUNT = 1
    assert client.get("/accounts/settings/profile/", REMOTE_ADDR="10.0.0.2",
                      HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.1").status_code == 403
    assert client.get("/accounts/settings/profile/", REMOTE_ADDR="10.0.0.2",
                      HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7").status_code == 200


@pytest.mark.django_db
def test_restriction_applies_to_trusted_users_and_not_to_other_customers(client):
    owner = UserFactory()
    technical = UserFactory(customer=owner.customer, role="technical")
    stranger = UserFactory()
    _restrict(owner, "203.0.113.7")
    client.force_login(technical)
    assert client.get("/accounts/settings/security/", REMOTE_ADDR="198.51.100.1").status_code == 403
    client.force_login(stranger)
    assert client.get("/accounts/settings/security/", REMOTE_ADDR="198.51.100.1").status_code == 200
