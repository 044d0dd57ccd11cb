"""Request checks every view relies on."""
from django.core.exceptions import BadRequest


class RejectNulBytesMiddleware:
    """PostgreSQL cannot store or compare a string with a NUL character: a `?q=%00` reaching a query
    would be a 500. Form fields already refuse NUL (Django's ProhibitNullCharactersValidator); query
    parameters are refused here, before any view, with the 400 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise BadRequest("NUL character in the query string")
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (settings.CONTENT_SECURITY_POLICY,
    settings.PERMISSIONS_POLICY; empty turns a header off). Scripts come only from our static files:
    no inline <script>, no on*= attributes (static/js/portal.js wires behaviour by data attributes)."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.headers = {"Content-Security-Policy": settings.CONTENT_SECURITY_POLICY,
                        "Permissions-Policy": settings.PERMISSIONS_POLICY}

    def __call__(self, request):
        response = self.get_response(request)
        for header, value in self.headers.items():
            if value and header not in response:
                response[header] = value
        return response
