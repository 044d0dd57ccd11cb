"""Form helpers every app's views share."""
from django.core.exceptions import ValidationError
from django.forms import Form


def apply_errors(form: Form, error: ValidationError, *, field: str | None = None) -> None:
    """A service's `ValidationError` onto the form that fed it: each message on its field where the
    form has that field, else on `field` (None: the form's non-field errors)."""
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(field, error)
