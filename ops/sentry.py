"""Error tracking (SENTRY_DSN): sentry-sdk with personal data scrubbed before anything leaves the host."""
import re

from django.conf import settings

FILTERED = "[Filtered]"
# Request parts that carry personal data or secrets: bodies (forms, card details), cookies (session),
# credentials and forwarded client IPs.
_SENSITIVE_HEADERS = {"authorization", "cookie", "set-cookie", "x-forwarded-for", "x-real-ip", "x-csrftoken",
                      "proxy-authorization"}
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """before_send: keep the user's id only, drop bodies, cookies, query strings and sensitive headers,
    and mask e-mail addresses in messages and exception values."""
    user = event.get("user")
    if user:
        event["user"] = {"id": user["id"]} if user.get("id") is not None else {}
    request = event.get("request")
    if request:
        for part in ("data", "cookies", "query_string", "env"):
            if request.get(part):
                request[part] = FILTERED
        headers = request.get("headers") or {}
        for name in list(headers):
            if name.lower() in _SENSITIVE_HEADERS:
                headers[name] = FILTERED
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = _EMAIL.sub(FILTERED, exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)  # local variables may hold passwords, card numbers, documents
    logentry = event.get("logentry") or {}
    if isinstance(logentry.get("message"), str):
        logentry["message"] = _EMAIL.sub(FILTERED, logentry["message"])
    if isinstance(event.get("message"), str):
        event["message"] = _EMAIL.sub(FILTERED, event["message"])
    return event


def init_sentry(dsn: str, *, transport=None) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    options = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.SENTRY_ENVIRONMENT,
        release=settings.SENTRY_RELEASE or None,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        # send_default_pii stays off (the default): no user e-mail, IP or cookies are attached.
        include_local_variables=False,
        max_request_body_size="never",
        integrations=[DjangoIntegration(), CeleryIntegration()],
        before_send=scrub_event,
        **options,
    )
