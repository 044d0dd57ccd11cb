"""`Idempotency-Key` for state-changing POSTs (Stripe's semantics).

The first request with a key inserts its row (committed at once, unique per API key + key) and runs;
its response is stored. A repeat with the same body gets the stored response; with another body, 422.
A repeat while the first is still running gets 409 and may retry. A 5xx or an exception forgets the
key, so the client can retry it. Rows older than API_IDEMPOTENCY_TTL are ignored and purged.
"""
import hashlib
import json
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .errors import error_body
from .models import IdempotentRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _fingerprint(request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data = request.data
    if hasattr(data, "lists"):
        data = {name: values for name, values in data.lists() if name not in request.FILES}
    digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            file_digest = hashlib.sha256()
            for chunk in upload.chunks():
                file_digest.update(chunk)
            upload.seek(0)
            digest.update(f"\n{name}:{upload.name}:{upload.size}:{file_digest.hexdigest()}".encode())
    return digest.hexdigest()


def _stored(response: Response) -> dict | None:
    if response.data is None:
        return None
    return json.loads(JSONRenderer().render(response.data))


def idempotency_purge(*, now=None) -> int:
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.API_IDEMPOTENCY_TTL)
    return IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()[0]


def idempotent(method):
    """Decorate a POST handler of an API view."""

    @wraps(method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER, "").strip()
        if not key:
            return method(self, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            return Response(error_body(400, _("The Idempotency-Key header is too long."), code="idempotency_key_invalid"), status=400)
        fingerprint = _fingerprint(request)
        api_key = request.auth
        now = timezone.now()
        IdempotentRequest.objects.filter(api_key=api_key, key=key,
                                         created_at__lt=now - timedelta(seconds=settings.API_IDEMPOTENCY_TTL)).delete()
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(api_key=api_key, key=key, fingerprint=fingerprint, created_at=now)
        except IntegrityError:
            # Another request with this key exists; if it is still running, its INSERT held us on the
            # unique index until it committed, so the row is visible now.
            record = IdempotentRequest.objects.filter(api_key=api_key, key=key).first()
            if record is None:  # deleted meanwhile (the first one failed): the client should retry
                return Response(error_body(409, _("A request with this Idempotency-Key is being processed. Retry it."),
                                           code="idempotency_in_progress"), status=409)
            if record.fingerprint != fingerprint:
                return Response(error_body(422, _("This Idempotency-Key was used with a different request."),
                                           code="idempotency_key_reused"), status=422)
            if record.status_code is None:
                return Response(error_body(409, _("A request with this Idempotency-Key is being processed. Retry it."),
                                           code="idempotency_in_progress"), status=409)
            response = Response(record.response_body, status=record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = method(self, request, *args, **kwargs)
        except Exception:
            IdempotentRequest.objects.filter(pk=record.pk).delete()
            raise
        if response.status_code >= 500 or not isinstance(response, Response):
            IdempotentRequest.objects.filter(pk=record.pk).delete()
            return response
        IdempotentRequest.objects.filter(pk=record.pk).update(status_code=response.status_code, response_body=_stored(response))
        return response

    return wrapper
