"""Every Russian catalogue in the project is complete: no untranslated or fuzzy entry, and every
translation keeps the placeholders of its original (Babel's python-format check)."""
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUES = sorted(p for p in ROOT.rglob("locale/*/LC_MESSAGES/*.po")
                    if ".venv" not in p.parts and "node_modules" not in p.parts)


def _translated(message) -> bool:
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return bool(strings) and all(strings)


def test_catalogues_are_found():
    names = {str(p.relative_to(ROOT)) for p in CATALOGUES}
    assert "locale/ru/LC_MESSAGES/django.po" in names
    assert len(names) >= 6


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: str(p.relative_to(ROOT)))
def test_catalogue_is_complete(path):
    locale = path.parent.parent.name
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    untranslated = [m.id for m in catalog if m.id and not _translated(m)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not untranslated, f"{len(untranslated)} untranslated in {path}: {untranslated[:10]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy in {path}: {fuzzy[:10]}"
    broken = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert not broken, f"placeholders differ in {path}: {broken[:5]}"
