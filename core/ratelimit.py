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


def parse_rule(rule: str) -> tuple[int, int]:
    """"10/3600" → (10 attempts, per 3600 seconds); "0/…" switches the limit off."""
    limit, _sep, window = rule.partition("/")
    return int(limit), int(window or 3600)


def limited_response(request, retry_after: int):
    from django.shortcuts import render

    response = render(request, "errors/429.html", {"retry_minutes": max(1, -(-retry_after // 60))}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def limit_posts(name: str, *, ip, account=None):
    """Limit POSTs to a view per client IP (`ip(request)`) and, if `account(request)` names one, per account, by the
    rules `settings.RATE_LIMITS[name]` = {"ip": "N/seconds", "account": "N/seconds"}. Over the limit
    the view is not called: 429 with Retry-After."""
    from functools import wraps

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                rules = settings.RATE_LIMITS.get(name, {})
                checks = [("ip", ip(request))]
                if account is not None:
                    checks.append(("account", account(request) or ""))
                waits = []
                for kind, ident in checks:
                    if kind in rules and ident:
                        limit, window = parse_rule(rules[kind])
                        waits.append(hit(f"{name}:{kind}", ident, limit=limit, window=window))
                waits = [wait for wait in waits if wait]
                if waits:
                    return limited_response(request, max(waits))
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
