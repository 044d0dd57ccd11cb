"""Forms of the server controls."""
from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import ReauthForm

from .order_fields import validate_ssh_key


class ReinstallForm(ReauthForm):
    """Reinstall: an OS allowed by the plan, an optional SSH key, a confirmation that the data is
    erased, and the user's password again (or a 2FA code when 2FA is on; ReauthForm checks it)."""

    os_image = forms.ChoiceField(label=_("Operating system"))
    ssh_key = forms.CharField(label=_("SSH public key (optional)"), required=False, max_length=4000,
                              widget=forms.Textarea(attrs={"rows": 3}), validators=[validate_ssh_key],
                              help_text=_("A new root password is set either way and shown to you once."))
    erase_confirmed = forms.BooleanField(label=_("I understand that every file on the server's disk is erased."))

    def __init__(self, *args, user, images, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["os_image"].choices = [(image.name, image.name) for image in images]
        self.order_fields(["os_image", "ssh_key", "erase_confirmed", "password", "token"])
        self.helper.form_tag = False  # the page's form carries the request id and its own button
        self.helper.inputs = []
