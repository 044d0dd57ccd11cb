from django import forms

from notifications.kinds import Kind


class TelegramKindsForm(forms.Form):
    """One checkbox per kind the user receives (see selectors.kinds_available)."""

    def __init__(self, *args, kinds: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        for kind in kinds:
            self.fields[kind] = forms.BooleanField(label=Kind(kind).label, required=False)

    def chosen_kinds(self) -> list[str]:
        return [kind for kind in self.fields if self.cleaned_data[kind]]
