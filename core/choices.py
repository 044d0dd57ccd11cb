"""Choice labels without Django's per-call rebuild of the choices.

Django's `get_FOO_display()` builds a dict of all the field's choices on every call, hashing each
lazily translated label (one `gettext` per choice: 25 for a notification's kind); a list page calls it
for every row. Models that mix this in look the label up in a dict built once per field, so a call
costs one `gettext`, whatever the number of choices. Same result (the raw value when it is not a
choice).
"""
from django.utils.encoding import force_str
from django.utils.hashable import make_hashable

_labels: dict = {}


class ChoiceLabels:
    """Mix into a model before models.Model: `class Invoice(ChoiceLabels, models.Model)`."""

    def _get_FIELD_display(self, field):
        labels = _labels.get(field)
        if labels is None:
            labels = _labels[field] = dict(make_hashable(field.flatchoices))
        value = getattr(self, field.attname)
        return force_str(labels.get(make_hashable(value), value), strings_only=True)
