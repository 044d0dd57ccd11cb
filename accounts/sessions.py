"""The session engine when the cache is Redis (settings.SESSION_ENGINE): Django's cached_db — every
request reads its session from the shared cache, writes go to the database and the cache — with the
cache's copy kept at most SESSION_CACHE_SECONDS.

The database stays the record: a session the cache has lost is read from it again. The cap bounds the
one case where the cache could keep a session the database no longer has: a logout while Redis was
unreachable but kept its data (the delete of the cached copy fails quietly, ops.cache). Password
changes and deactivated users are refused by the session-hash and backend checks whatever the cache
holds. With a per-process cache (no REDIS_URL) the plain database engine is used: one process's copy
would outlive a logout served by another.
"""
from django.conf import settings
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore


class _CappedCache:
    """The cache as cached_db uses it, with every lifetime capped."""

    def __init__(self, cache, seconds: int):
        self.cache, self.seconds = cache, seconds

    def get(self, key, default=None):
        return self.cache.get(key, default)

    def set(self, key, value, timeout=None):
        return self.cache.set(key, value, self.seconds if timeout is None else min(timeout, self.seconds))

    def delete(self, key):
        return self.cache.delete(key)

    def __contains__(self, key) -> bool:
        return key in self.cache


class SessionStore(CachedDBStore):
    cache_key_prefix = "accounts.sessions"

    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._cache = _CappedCache(self._cache, settings.SESSION_CACHE_SECONDS)
