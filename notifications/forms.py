from django import forms

from .kinds import KINDS, MANDATORY_KINDS, Kind


class SubscriptionsForm(forms.Form):
    """One checkbox per kind the customer may switch off (mandatory kinds are not fields at all)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in KINDS:
            if kind not in MANDATORY_KINDS:
                self.fields[kind] = forms.BooleanField(label=Kind(kind).label, required=False)

    def email_choices(self) -> dict[str, bool]:
        return {kind: self.cleaned_data[kind] for kind in self.fields}
