"""Every error of /api/v1/ has one body: `{"error": {"type", "code", "message", "fields"?}}`."""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


ERROR_TYPES = {
    status.HTTP_400_BAD_REQUEST: "invalid_request",
    status.HTTP_401_UNAUTHORIZED: "authentication_failed",
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_409_CONFLICT: "conflict",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_422_UNPROCESSABLE_ENTITY: "idempotency_error",
    status.HTTP_429_TOO_MANY_REQUESTS: "rate_limited",
}


def error_body(status_code: int, message: str, *, code: str = "", fields: dict | None = None) -> dict:
    body = {"type": ERROR_TYPES.get(status_code, "api_error"), "code": code or ERROR_TYPES.get(status_code, "error"),
            "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def api_exception_handler(exc, context):
    """Every error is `{"error": {"type", "code", "message", "fields"?}}`. A refused service call
    (Django ValidationError, with the same translated message the page shows) is a 400."""
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else None
        code = getattr(exc, "code", None) or "refused"
        return Response(error_body(400, " ".join(exc.messages), code=code, fields=fields), status=400)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(exc, exceptions.ValidationError) and isinstance(detail, dict):
        fields = {name: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])] for name, msgs in detail.items()}
        message = " ".join(fields.pop("non_field_errors", [])) or _("The request has invalid fields.")
        response.data = error_body(400, message, code="invalid", fields=fields)
    else:
        if isinstance(detail, dict) and "detail" in detail:
            message, code = str(detail["detail"]), getattr(detail["detail"], "code", "")
        elif isinstance(detail, list):
            message, code = " ".join(str(d) for d in detail), ""
        else:
            message, code = str(detail), ""
        response.data = error_body(response.status_code, message, code=code)
    return response


def form_errors(form) -> exceptions.ValidationError:
    """A Django form's errors as a DRF validation error (the same translated messages as the page)."""
    errors = {("non_field_errors" if name == "__all__" else name): [str(m) for m in msgs] for name, msgs in form.errors.items()}
    return exceptions.ValidationError(errors)
