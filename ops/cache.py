"""Django's Redis cache that degrades to "always a miss" while Redis is unreachable, so a Redis
outage slows pages down instead of failing them (settings.CACHES when REDIS_URL is set)."""
import functools
import logging
import time

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)
_WARN_EVERY_SECONDS = 60
_last_warning = [0.0]


def _warn(operation: str, error: Exception) -> None:
    # One warning a minute per process, not one per cache call during an outage.
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY_SECONDS:
        _last_warning[0] = now
        logger.warning("cache unavailable (%s: %s); serving without it", operation, error)


def _degrading(fallback):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except RedisError as error:
                _warn(method.__name__, error)
                return fallback(*args, **kwargs) if callable(fallback) else fallback
        return wrapper
    return decorate


def _default_argument(key, default=None, *args, **kwargs):
    return default


class _PooledClientRedisCacheClient(RedisCacheClient):
    """Django builds a new `redis.Redis` for every cache call (its constructor fills ~170 response
    callbacks: a large part of a page's single top-bar read); one client per connection pool does
    the same work (clients over a pool are thread-safe, the pool hands out the connections)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    """On a Redis error: reads miss, writes are dropped, `add` reports "not added", `incr` counts as if
    the key were new (rate limits fail open rather than lock everyone out)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _PooledClientRedisCacheClient

    get = _degrading(_default_argument)(RedisCache.get)
    get_many = _degrading({})(RedisCache.get_many)
    has_key = _degrading(False)(RedisCache.has_key)
    set = _degrading(None)(RedisCache.set)
    set_many = _degrading(lambda data, *a, **k: list(data))(RedisCache.set_many)
    add = _degrading(False)(RedisCache.add)
    touch = _degrading(False)(RedisCache.touch)
    delete = _degrading(False)(RedisCache.delete)
    delete_many = _degrading(None)(RedisCache.delete_many)
    incr = _degrading(lambda key, delta=1, *a, **k: delta)(RedisCache.incr)
    clear = _degrading(False)(RedisCache.clear)
