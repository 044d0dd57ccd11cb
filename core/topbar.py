"""A tiny registry for top-bar widgets so the base layout needs no domain imports.

An app registers a provider in its AppConfig.ready():
    register_topbar_provider("balance", billing.selectors.topbar_balance)
A provider takes (request, customer) and returns a value for `topbar.<name>` in templates.
"""
from collections.abc import Callable

_providers: dict[str, Callable] = {}


def register_topbar_provider(name: str, provider: Callable) -> None:
    _providers[name] = provider


def collect_topbar(request, customer) -> dict:
    cached = getattr(request, "_topbar_cache", None)
    if cached is None:
        cached = {name: provider(request, customer) for name, provider in _providers.items()}
        request._topbar_cache = cached
    return cached
