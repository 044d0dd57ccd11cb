"""The Redis cache (REDIS_URL set) and its graceful degradation when Redis is unreachable."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import override_settings

from accounts.tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"


def redis_cache(location: str) -> dict:
    return {"default": {"BACKEND": "ops.cache.ResilientRedisCache", "LOCATION": location, "KEY_PREFIX": "ops-tests",
                        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}


def test_settings_use_redis_cache_on_database_1_when_redis_url_is_set():
    code = "from django.conf import settings; c = settings.CACHES['default']; print(c['BACKEND'], c['LOCATION'])"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.local", "REDIS_URL": "redis://10.1.2.3:6380/0"}
    env.pop("CACHE_URL", None)
    out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ops.cache.ResilientRedisCache", "redis://10.1.2.3:6380/1"]


def test_cache_round_trips_through_a_live_redis(settings):
    # The suite's own Redis database (TEST_REDIS_DB), never the demo's.
    with override_settings(CACHES=redis_cache(settings.CELERY_BROKER_URL)):
        cache = caches["default"]
        cache.set("greeting", {"n": 1}, 30)
        assert cache.get("greeting") == {"n": 1}
        assert cache.add("greeting", "other") is False
        cache.delete("greeting")
        assert cache.get("greeting", "missing") == "missing"
        client = cache._cache.get_client()
        assert cache._cache.get_client() is client and cache._cache.get_client(write=True) is client  # one per pool


def test_unreachable_redis_reads_miss_and_writes_are_dropped():
    with override_settings(CACHES=redis_cache(DEAD_REDIS)):
        cache = caches["default"]
        assert cache.get("anything", "fallback") == "fallback"
        assert cache.get_many(["a", "b"]) == {}
        cache.set("anything", 1)
        assert cache.set_many({"a": 1}) == ["a"]
        assert cache.add("anything", 1) is False
        assert cache.incr("counter", 3) == 3
        cache.delete("anything")


@pytest.mark.django_db
def test_pages_render_while_the_cache_is_down(client):
    client.force_login(UserFactory())
    with override_settings(CACHES=redis_cache(DEAD_REDIS)):
        assert client.get("/").status_code == 200
        assert client.get("/healthz").status_code == 200
