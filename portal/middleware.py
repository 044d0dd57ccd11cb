"""A readable page for 405 responses.

`require_POST` and class-based views answer a GET on a POST-only URL (an old bookmark, a reloaded
form result, a link pasted from an email) with an empty 405 that browsers show as a blank page.
"""
from django.http import HttpResponseNotAllowed
from django.shortcuts import render


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
