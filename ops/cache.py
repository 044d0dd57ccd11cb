"""Django's Redis cache that degrades to "always a miss" while Redis is unreachable, so a Redis
outage slows pages down instead of failing them (settings.CACHES when REDIS_URL is set)."""
import functools
import logging
import time

from django.core.cache.backends.redis import RedisCache
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


class ResilientRedisCache(RedisCache):
    """On a Redis error: reads miss, writes are dropped, `add` reports "not added", `incr` counts as if
    the key were new (rate limits fail open rather than lock everyone out)."""

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
