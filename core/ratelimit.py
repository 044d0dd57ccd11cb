"""Fixed-window rate limits kept in Redis, so every web process counts the same hits.

`hit(scope, ident, limit=, window=)` counts one attempt and returns how many seconds to wait when
the limit is exceeded (None otherwise). When Redis is unreachable the limit is not enforced (logged):
an outage of the counter store must not lock every customer out.
"""
import hashlib
import logging
import time
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def client() -> redis.Redis:
    return _client(settings.RATELIMIT_REDIS_URL)


def _key(scope: str, ident: str, window_number: int) -> str:
    # Identifiers (emails, IPs) are hashed: the counter store never holds personal data in clear.
    digest = hashlib.sha256(ident.strip().lower().encode()).hexdigest()[:32]
    return f"{settings.RATELIMIT_KEY_PREFIX}:{scope}:{digest}:{window_number}"


def hit(scope: str, ident: str, *, limit: int, window: int) -> int | None:
    """Count one attempt; return seconds until the window resets if this one is over `limit`."""
    if limit <= 0 or not ident:
        return None
    now = time.time()
    window_number = int(now // window)
    key = _key(scope, ident, window_number)
    try:
        pipe = client().pipeline()
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count = pipe.execute()[0]
    except redis.RedisError as error:
        logger.warning("rate limit %s not enforced: %s", scope, error)
        return None
    if count > limit:
        return max(1, int((window_number + 1) * window - now) + 1)
    return None


def clear_all() -> None:
    """Forget every counter under this deployment's prefix (tests)."""
    redis_client = client()
    for key in redis_client.scan_iter(match=f"{settings.RATELIMIT_KEY_PREFIX}:*", count=500):
        redis_client.delete(key)
