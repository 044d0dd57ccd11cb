"""The portal's URLs plus /bench/layout: the shared layout (navigation, top bar, footer) around an empty
page, so bench/pages.py can measure what the layout alone costs against the minimal JSON view.
Served only by the bench (bench/portal_settings.py), never by the portal itself."""
from django.http import HttpResponse
from django.template import engines
from django.urls import path

from accounts.roles import Area, customer_view
from portal.urls import handler403, handler404, handler500, urlpatterns as portal_urlpatterns  # noqa: F401

_LAYOUT = engines["django"].from_string('{% extends "base.html" %}{% block content %}{% endblock %}')


@customer_view(Area.ACCOUNT)
def layout_only(request):
    return HttpResponse(_LAYOUT.render({}, request))


urlpatterns = [path("bench/layout", layout_only, name="bench_layout"), *portal_urlpatterns]
