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
