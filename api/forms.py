from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.form_renderer import plain_widgets

from .scopes import SCOPE_LABELS, scopes_for_role

EXPIRY_CHOICES = [("30", _("30 days")), ("90", _("90 days")), ("365", _("1 year")), ("never", _("Never"))]


class ApiKeyForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("Where the key is used, e.g. “backup script”."))
    scopes = forms.MultipleChoiceField(label=_("Scopes"), widget=forms.CheckboxSelectMultiple)
    expires = forms.ChoiceField(label=_("Expires"), choices=EXPIRY_CHOICES, initial="90")
    allowed_ips = forms.CharField(
        label=_("Allowed IP addresses"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Optional. One address, range or CIDR network per line; empty means any address your account allows."))

    def __init__(self, *args, role: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, SCOPE_LABELS[scope]) for scope in scopes_for_role(role)]

    def expires_at(self):
        value = self.cleaned_data["expires"]
        return None if value == "never" else timezone.now() + timedelta(days=int(value))


class WebhookEndpointForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    url = forms.URLField(label=_("HTTPS URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(label=_("Events"), widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        from .webhooks import EVENT_LABELS

        super().__init__(*args, **kwargs)
        self.fields["events"].choices = list(EVENT_LABELS.items())
