"""Jinja2 for the hot parts of pages: list rows and page bodies that print hundreds of values.

Django's template engine costs ~1 µs per variable lookup, filter and node; a 25-row table with 20
cells per row spent more time there than in its queries (docs/PERFORMANCE.md). Jinja2 compiles a
template to Python code and renders the same rows several times faster. The layout (`base.html`),
forms and everything else stay Django templates; a Django template hands its body to Jinja2 with

    {% load jinja %}{% jinja "orders/order_list.html" %}

which renders `<app>/jinja2/<app>/order_list.html` with the Django context's variables. The templates
are `.html` files so `makemessages` finds their `_("...")` strings (write messages as `_("...")`, not
`{% trans %}`; plural forms stay in Python). The environment behaves like Django's engine where it
matters for output:

- printed values are converted to the active time zone and localized (numbers, dates) as Django's
  `{{ value }}` does (`_finalize`);
- every filter of the Django template libraries (`money`, `link`, `date`, `localized`, ...) is
  available under its own name unless Jinja2 has a builtin of that name (`default`, `length`, ...;
  Jinja's own semantics then apply); filters that expect local time or the autoescape flag get them;
- `_`, `gettext`, `ngettext`, `pgettext` are Django's (the active language), `url(name, *args)` is
  `reverse` (cached), `static(path)` is the static files storage's URL, `csrf_input(csrf_token)` writes the
  form's hidden CSRF field, `localtime()` is the time in the active zone, `django_include(name)` renders
  a shared Django partial (pagination).
"""
from __future__ import annotations

import datetime
import html

import jinja2
from django import template
from django.conf import settings
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import formats, timezone, translation
from django.utils.html import format_html
from django.utils.timezone import template_localtime
from markupsafe import Markup

from core.links import link_for

register = template.Library()


@jinja2.pass_eval_context
def _finalize(eval_ctx, value):
    """`{{ value }}` as Django prints it: local time, then localized (Russian decimals take a comma), then
    `str()` — an object whose str() is safe HTML (a flash message of safe text) stays unescaped — and
    escaped as Django escapes (`&#x27;`, `&quot;`, where markupsafe writes `&#39;`, `&#34;`)."""
    if hasattr(value, "__html__") or value.__class__ is int:
        return value  # ints print the same localized unless thousands are separated (checked below)
    if not isinstance(value, str):
        if isinstance(value, datetime.datetime):
            value = template_localtime(value)
        value = str(formats.localize(value, use_l10n=True))
        if hasattr(value, "__html__"):
            return value
    return Markup(html.escape(value)) if eval_ctx.autoescape else value


def _django_filter(func):
    """A Django template filter called as Jinja2 calls filters (value first, then the arguments)."""
    localtime = getattr(func, "expects_localtime", False)
    autoescape = getattr(func, "needs_autoescape", False)
    if not (localtime or autoescape):
        return func

    def call(value, *args):
        if localtime:
            value = template_localtime(value)
        return func(value, *args, autoescape=True) if autoescape else func(value, *args)

    call.__name__ = getattr(func, "__name__", "filter")
    return call


def _django_filters(jinja_builtins) -> dict:
    """Every filter of Django's builtins and registered template libraries, by name."""
    from django.template import engines

    engine = engines["django"].engine
    libraries = [*engine.template_builtins, *engine.template_libraries.values()]
    found: dict = {}
    for library in libraries:
        for name, func in library.filters.items():
            if name in jinja_builtins or name in found:
                continue  # Jinja's builtin wins; Django's builtins come first and win over libraries
            found[name] = _django_filter(func)
    return found


_plain_urls: dict[tuple[str, str, str], str] = {}


def url(name: str, *args) -> str:
    """`reverse` (with positional arguments); a URL without arguments is reversed once per script prefix,
    an integer id goes through core.links (the layout prints a dozen of these on every page)."""
    if not args:
        key = (get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF, name)
        found = _plain_urls.get(key)
        if found is None:
            found = _plain_urls[key] = reverse(name)
        return found
    if len(args) == 1 and isinstance(args[0], int):
        return link_for(name, args[0])
    return reverse(name, args=args)


def csrf_input(csrf_token) -> str:
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', csrf_token)


@jinja2.pass_context
def django_include(context, name: str) -> str:
    """`{{ django_include("billing/_pagination.html") }}`: a shared Django partial with this context."""
    from django.template.loader import get_template

    return get_template(name, using="django").render(context.get_all())


def environment(**options) -> jinja2.Environment:
    """The `environment` of the Jinja2 entry in settings.TEMPLATES."""
    if settings.USE_THOUSAND_SEPARATOR:
        raise NotImplementedError("core.jinja._finalize prints ints unlocalized: add the thousands separator there")
    options.setdefault("autoescape", True)
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], finalize=_finalize, **options)
    env.install_gettext_callables(translation.gettext, translation.ngettext, newstyle=True,
                                  pgettext=translation.pgettext, npgettext=translation.npgettext)
    env.filters.update(_django_filters(set(env.filters)))
    env.globals.update(url=url, static=static, localtime=timezone.localtime, csrf_input=csrf_input,
                       django_include=django_include)
    return env


class JinjaNode(template.Node):
    def __init__(self, name: str):
        self.name = name

    def render(self, context) -> str:
        from django.template import engines

        # Jinja2 keeps compiled templates (and reloads changed ones when DEBUG sets auto_reload).
        return engines["jinja2"].env.get_template(self.name).render(context.flatten())


@register.tag("jinja")
def jinja_tag(parser, token):
    """{% jinja "app/name.html" %}: render that Jinja2 template here with this context's variables."""
    bits = token.split_contents()
    if len(bits) != 2 or bits[1][0] not in "\"'" or bits[1][0] != bits[1][-1]:
        raise template.TemplateSyntaxError('{% jinja "app/template.html" %} takes one quoted template name')
    return JinjaNode(bits[1][1:-1])
