"""Texts staff write per language: catalogue names and descriptions, policy titles and texts.

The base field (`name`) holds the default language (LANGUAGE_CODE, English); `<field>_<lang>`
(`name_ru`) the translation. An empty translation falls back to the base text.
"""
from functools import partial

from django.conf import settings
from django.utils import translation


def localized(obj, field: str) -> str:
    """`obj.<field>` in the active language."""
    return localized_value(partial(getattr, obj), field)


def localized_value(get, field: str, language: str | None = None) -> str:
    """`localized` of any values: `get(name)` reads one (`row.get` for a dict row), `get(name, "")` one that
    may be missing; `language` the active one unless given (a list's caller reads it once)."""
    language = (language or translation.get_language() or settings.LANGUAGE_CODE).split("-")[0]
    if language != settings.LANGUAGE_CODE.split("-")[0]:
        value = get(f"{field}_{language}", "")
        if value:
            return value
    return get(field)
