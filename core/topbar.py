"""A tiny registry for top-bar widgets so the base layout needs no domain imports, and their cache.

An app registers a provider in its AppConfig.ready():
    register_topbar_provider("balance", billing.selectors.topbar_balance)
A provider takes (request, customer) and returns a value for `topbar.<name>` in templates (picklable:
it is cached).

Every page shows these values and they rarely change, so they are cached per user (with the user's
role, the language and the customer's account currency in the key: providers format with them and
filter by role), next to two version tokens: one per customer and one for everyone. An entry is used
only while both tokens are the ones it was computed under. Whatever changes a value a provider reads
calls `topbar_changed(customer_ids)` (or `topbar_changed_all()`), which replaces the token at once and
again after the transaction commits: a page computed from the database before the commit cannot keep
its old values under the token that follows the change. With the cache down every page computes them
(as before the cache existed); `TOPBAR_CACHE_SECONDS = 0` turns the cache off (tests: query counts
are pinned on the uncached path).
"""
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils.translation import get_language

T = TypeVar("T")
_providers: dict[str, Callable] = {}
_PREFIX = "topbar"
_EVERYONE = f"{_PREFIX}:v:all"


def register_topbar_provider(name: str, provider: Callable) -> None:
    _providers[name] = provider


def _token_key(customer_id: int) -> str:
    return f"{_PREFIX}:v:{customer_id}"


def collect_topbar(request, customer) -> dict:
    """The providers' values for this request: computed at most once per request, and read from the
    cache while nothing they depend on has changed (one cache round trip)."""
    cached = getattr(request, "_topbar_cache", None)
    if cached is not None:
        return cached
    seconds = getattr(settings, "TOPBAR_CACHE_SECONDS", 0)
    if not seconds:
        cached = request._topbar_cache = _compute(request, customer)
        return cached
    user = request.user
    key = f"{_PREFIX}:u:{user.pk}:{getattr(user, 'role', '')}:{get_language()}:{customer.pk}:{customer.currency}"
    cached = request._topbar_cache = _under_tokens(key, customer.pk, lambda: _compute(request, customer), seconds)
    return cached


def cached_for_customer(customer_id: int, name: str, compute: Callable[[], T]) -> T:
    """`compute()` kept in the cache under this customer's top-bar tokens: computed again after anything
    that calls `topbar_changed` for the customer (every move of its balance, unread counts, policies) or
    `topbar_changed_all`. Only for values that change no other way; `name` carries whatever else they
    depend on (time zone, month, language)."""
    seconds = getattr(settings, "TOPBAR_CACHE_SECONDS", 0)
    if not seconds:
        return compute()
    return _under_tokens(f"{_PREFIX}:c:{customer_id}:{name}", customer_id, compute, seconds)


def _under_tokens(key: str, customer_id: int, compute: Callable[[], T], seconds: int) -> T:
    """The entry at `key` while the customer's and everyone's tokens are the ones it was computed under
    (one cache round trip), else `compute()` stored under the current tokens."""
    tokens_keys = [_token_key(customer_id), _EVERYONE]
    found = cache.get_many([key, *tokens_keys])
    tokens = tuple(found.get(k) for k in tokens_keys)
    entry = found.get(key)
    if entry is not None and None not in tokens and entry[0] == tokens:
        return entry[1]
    value = compute()
    if None in tokens:
        # A token is missing (first page, or evicted): create it; the next page caches under it.
        for token_key, token in zip(tokens_keys, tokens):
            if token is None:
                cache.add(token_key, uuid.uuid4().hex, _token_seconds(seconds))
    else:
        cache.set(key, (tokens, value), seconds)
    return value


def _compute(request, customer) -> dict:
    return {name: provider(request, customer) for name, provider in _providers.items()}


def _token_seconds(seconds: int) -> int:
    return max(seconds * 10, 86400)  # outlives the entries (an expired token only costs a recompute)


def topbar_changed(customer_ids: Iterable[int]) -> None:
    """What the top bar shows changed for these customers' users (balance, unread counts, pending
    policies): new tokens now and after commit (see the module docstring)."""
    keys = [_token_key(pk) for pk in set(customer_ids) if pk is not None]
    if keys and getattr(settings, "TOPBAR_CACHE_SECONDS", 0):
        _replace_tokens(keys)
        transaction.on_commit(lambda: _replace_tokens(keys))


def topbar_changed_all() -> None:
    """What the top bar shows changed for everyone (a policy published)."""
    if getattr(settings, "TOPBAR_CACHE_SECONDS", 0):
        _replace_tokens([_EVERYONE])
        transaction.on_commit(lambda: _replace_tokens([_EVERYONE]))


def _replace_tokens(keys: list[str]) -> None:
    seconds = _token_seconds(settings.TOPBAR_CACHE_SECONDS)
    cache.set_many({key: uuid.uuid4().hex for key in keys}, seconds)
