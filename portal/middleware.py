"""Request checks every view relies on, and a readable page for 405 responses."""
from django.core.exceptions import BadRequest
from django.http import HttpResponseNotAllowed
from django.shortcuts import render


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


class RequestSizeLimitUploadHandler:
    """First of FILE_UPLOAD_HANDLERS: a multipart body larger than UPLOAD_MAX_REQUEST_BYTES is refused
    (400) from its Content-Length before a byte is read or written to a temporary file. Per-file limits
    (ticket attachments, avatars) stay with the forms, which say which file is too big."""

    chunk_size = 64 * 1024

    def __init__(self, request=None):
        self.request = request

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        from django.conf import settings
        from django.core.exceptions import RequestDataTooBig

        if content_length > settings.UPLOAD_MAX_REQUEST_BYTES:
            raise RequestDataTooBig("Upload larger than UPLOAD_MAX_REQUEST_BYTES.")

    def new_file(self, *args, **kwargs):
        pass

    def receive_data_chunk(self, raw_data, start):
        return raw_data  # the next handler (memory or temporary file) stores it

    def file_complete(self, file_size):
        return None

    def upload_complete(self):
        pass

    def upload_interrupted(self):
        pass


# `require_POST` and class-based views answer a GET on a POST-only URL (an old bookmark, a reloaded
# form result, a link pasted from an email) with an empty 405 that browsers show as a blank page.
class MethodNotAllowedPageMiddleware:
    """Render errors/405.html for empty 405 responses to page requests; the Allow header stays."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (isinstance(response, HttpResponseNotAllowed) and not response.content and request.method in ("GET", "HEAD")
                and not getattr(request, "htmx", False)):
            page = render(request, "errors/405.html", status=405)
            page["Allow"] = response["Allow"]
            return page
        return response
