from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _, gettext_lazy, ngettext

from .models import Department, Ticket
from .uploads import ALLOWED_EXTENSIONS, check_upload


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files (Django docs, "Uploading multiple files")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ",".join(ALLOWED_EXTENSIONS)}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single_file_clean = super().clean
        if isinstance(data, (list, tuple)):
            return [single_file_clean(item, initial) for item in data]
        return [single_file_clean(data, initial)] if data else []


def attachments_help_text() -> str:
    return _("Up to %(count)s files, %(size)s each: images, PDF, ZIP or text/log files.") % {
        "count": settings.TICKETS_ATTACHMENTS_PER_MESSAGE,
        "size": filesizeformat(settings.TICKETS_ATTACHMENT_MAX_BYTES),
    }


class AttachmentsFormMixin:
    """Adds `attachments` and turns the uploads into checked files (count, size, content type, name)."""

    def add_attachments_field(self) -> None:
        self.fields["attachments"] = MultipleFileField(
            label=_("Attachments"), required=False, help_text=attachments_help_text()
        )

    def clean_attachments(self):
        files = self.cleaned_data.get("attachments") or []
        limit = settings.TICKETS_ATTACHMENTS_PER_MESSAGE
        if len(files) > limit:
            raise ValidationError(
                ngettext(
                    "You can attach at most %(limit)d file to one message.",
                    "You can attach at most %(limit)d files to one message.",
                    limit,
                ) % {"limit": limit},
                code="too_many",
            )
        checked, errors = [], []
        for upload in files:
            try:
                checked.append(check_upload(upload))
            except ValidationError as error:
                errors.extend(error.messages)
        if errors:
            raise ValidationError(errors)
        return checked


class ServiceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, order) -> str:
        return " · ".join(str(part) for part in (f"#{order.pk}", order.plan, order.ip, order.get_status_display()) if part)


class TicketCreateForm(AttachmentsFormMixin, forms.Form):
    department = forms.ModelChoiceField(label=gettext_lazy("Department"), queryset=Department.objects.none(),
                                        empty_label=None)
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=200)
    priority = forms.ChoiceField(label=gettext_lazy("Priority"), choices=Ticket.Priority.choices,
                                 initial=Ticket.Priority.NORMAL)
    body = forms.CharField(label=gettext_lazy("Message"), widget=forms.Textarea(attrs={"rows": 8}), max_length=20000)

    def __init__(self, *args, departments, orders, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = departments
        self.fields["related_order"] = ServiceChoiceField(
            label=_("Related service"), queryset=orders, required=False, empty_label=_("Not about a specific service"),
        )
        self.order_fields(["department", "subject", "priority", "related_order", "body"])
        self.add_attachments_field()


class ReplyForm(AttachmentsFormMixin, forms.Form):
    body = forms.CharField(label=gettext_lazy("Your reply"), widget=forms.Textarea(attrs={"rows": 5}),
                           max_length=20000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_attachments_field()


class StaffReplyForm(ReplyForm):
    is_internal = forms.BooleanField(
        label=gettext_lazy("Internal note (staff only, the customer is not notified)"), required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["body"].label = _("Reply")


def country_name(code: str) -> str:
    from babel import Locale, UnknownLocaleError
    from django.utils.translation import get_language

    if not code:
        return _("not set")
    try:
        return Locale.parse(get_language() or "en", sep="-").territories.get(code.upper(), code)
    except (UnknownLocaleError, ValueError):
        return code


def topic_initial(topic: str, *, customer, departments) -> dict:
    """Initial values for the links other pages make to a pre-filled ticket (`?topic=...`)."""
    if topic == "change-country":
        return {
            "department": departments.filter(category=Department.Category.BILLING).first(),
            "subject": _("Change of country"),
            "priority": Ticket.Priority.NORMAL,
            "body": _(
                "Please change the country of my account.\n\n"
                "Current country: %(country)s\n"
                "New country: \n"
                "Reason: \n\n"
                "I attach a document confirming my new address."
            ) % {"country": country_name(customer.country)},
        }
    return {}
