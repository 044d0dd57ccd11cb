"""Texts staff write per language: catalogue names and descriptions, policy titles and texts.

The base field (`name`) holds the default language (LANGUAGE_CODE, English); `<field>_<lang>`
(`name_ru`) the translation. An empty translation falls back to the base text.
"""
from django.conf import settings
from django.utils import translation


def localized(obj, field: str) -> str:
    """`obj.<field>` in the active language."""
    language = (translation.get_language() or settings.LANGUAGE_CODE).split("-")[0]
    if language != settings.LANGUAGE_CODE.split("-")[0]:
        value = getattr(obj, f"{field}_{language}", "")
        if value:
            return value
    return getattr(obj, field)
