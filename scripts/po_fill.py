"""Fill msgstr entries of a .po file from a Python file that defines TR = {msgid: translation}.

    python scripts/po_fill.py billing/locale/ru/LC_MESSAGES/django.po /tmp/billing_ru.py

Plural entries take a tuple of the three Russian forms. Prints msgids still untranslated.
"""
import runpy
import sys

from babel.messages.pofile import read_po, write_po

po_path, *dict_files = sys.argv[1:]
translations: dict = {}
for dict_file in dict_files:
    translations.update(runpy.run_path(dict_file)["TR"])

with open(po_path, "rb") as fh:
    catalog = read_po(fh, locale="ru")
missing = []
for message in catalog:
    if not message.id:
        continue
    key = message.id if isinstance(message.id, str) else message.id[0]
    if key in translations:
        value = translations[key]
        if isinstance(message.id, tuple):
            message.string = tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3
        else:
            message.string = value
        message.flags.discard("fuzzy")
    elif not (message.string if isinstance(message.string, str) else all(message.string)):
        missing.append(key)
with open(po_path, "wb") as fh:
    write_po(fh, catalog, width=100)
print(f"{po_path}: {len(missing)} untranslated")
for key in missing:
    print("  ", repr(key))
