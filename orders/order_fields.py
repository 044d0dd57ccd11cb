"""Order-form fields a product type can ask for. ProductType.order_fields lists their keys.

Each entry builds a Django form field for a plan; the cleaned values are stored in Order.options.
"""
import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def validate_hostname(value: str) -> None:
    if not HOSTNAME_RE.match(value):
        raise ValidationError(
            _("Enter a valid hostname: letters, digits and hyphens, dot-separated labels, e.g. web1.example.com."),
            code="invalid_hostname",
        )


def _hostname_field(plan) -> forms.Field:
    return forms.CharField(
        label=_("Hostname"), max_length=253, validators=[validate_hostname],
        help_text=_("For example server1.example.com"),
    )


def _os_image_field(plan) -> forms.Field:
    images = [(str(image.pk), image.name) for image in plan.product_type.os_images.all() if image.is_active]
    return forms.ChoiceField(label=_("Operating system"), choices=images)


def _location_field(plan) -> forms.Field:
    locations = [(location.code, location.name) for location in plan.locations.all()]
    return forms.ChoiceField(label=_("Location"), choices=locations)


def _ssh_key_field(plan) -> forms.Field:
    return forms.CharField(
        label=_("SSH public key"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}),
        validators=[validate_ssh_key],
    )


def validate_ssh_key(value: str) -> None:
    if value and not re.match(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$", value.strip()):
        raise ValidationError(_("This does not look like an OpenSSH public key."), code="invalid_ssh_key")


ORDER_FIELDS = {
    "hostname": _hostname_field,
    "os_image": _os_image_field,
    "location": _location_field,
    "ssh_key": _ssh_key_field,
}

# How each stored option is named for people (order page, staff admin).
OPTION_LABELS = {
    "hostname": _("Hostname"),
    "os_image": _("Operating system"),
    "location": _("Location"),
    "ssh_key": _("SSH public key"),
}
