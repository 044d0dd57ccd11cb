"""accounts.sessions: with Redis the session comes from the cache (no query), the database stays the
record, a logout ends it in both, and the cache keeps a copy at most SESSION_CACHE_SECONDS."""
import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached_sessions(settings):
    settings.SESSION_ENGINE = "accounts.sessions"
    settings.SESSION_CACHE_SECONDS = 300
    cache.clear()
    yield
    cache.clear()


def _session_reads(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/accounts/whoami").status_code == 200
    return sum('FROM "django_session"' in query["sql"] for query in queries)


def test_a_session_is_read_from_the_cache_and_ends_everywhere_at_logout(client, owner, cached_sessions):
    with time_machine.travel("2027-12-31 23:58:00+00:00", tick=False) as clock:
        client.force_login(owner)
        assert Session.objects.count() == 1  # the record
        assert _session_reads(client) == 0  # the copy the login wrote
        clock.shift(301)  # past the cap: the copy is gone, the database serves and refills it
        assert _session_reads(client) == 1
        assert _session_reads(client) == 0
        cookie = client.cookies["sessionid"].value
        assert client.post("/accounts/logout/").status_code == 302
        assert not Session.objects.exists()
        client.cookies["sessionid"] = cookie  # a copy of the old cookie no longer signs anyone in
        assert client.get("/accounts/whoami").status_code == 401


def test_a_session_the_cache_lost_is_read_from_the_database(client, owner, cached_sessions):
    client.force_login(owner)
    cache.clear()  # Redis restarted empty (it keeps nothing on disk)
    assert _session_reads(client) == 1
    response = client.get("/accounts/whoami")
    assert response.json()["username"] == owner.username


@pytest.mark.django_db
def test_the_session_user_compiled_once_is_what_the_orm_reads():
    from accounts.backends import UsernameOrEmailBackend
    from accounts.models import User
    from accounts.tests.factories import StaffUserFactory, UserFactory

    backend = UsernameOrEmailBackend()
    for user in (UserFactory(), StaffUserFactory()):
        with CaptureQueriesContext(connection) as queries:
            found = backend.get_user(user.pk)
        expected = User.objects.select_related("customer").filter(pk=user.pk).first()
        assert len(queries) == 1 and found == expected and not found._state.adding
        assert {k: v for k, v in found.__dict__.items() if k != "_state"} == {k: v for k, v in expected.__dict__.items() if k != "_state"}
        assert found.customer == expected.customer and (found.customer is None or found.customer.__dict__.keys() == expected.customer.__dict__.keys())
        assert backend.get_user(str(user.pk)) == expected
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert backend.get_user(user.pk) is None and backend.get_user(-1) is None
