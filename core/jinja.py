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
- `_`, `gettext`, `ngettext`, `pgettext` are Django's (the active language), filled in like
  `{% blocktranslate %}`: `_("Page %(n)s of %(total)s", n=n, total=t)` escapes the values, not the message; `url(name, *args)` is
  `reverse` (cached), `memo_dates(fmt)` maps a page's rows' times to `memo_date(fmt)`'s text (language
  and zone read once), `static(path)` is the static files storage's URL, `csrf_input(csrf_token)` writes the
  form's hidden CSRF field, `localtime()` is the time in the active zone, `django_include(name)` renders
  a shared Django partial (the Telegram link).
"""
from __future__ import annotations

import datetime
import html
from functools import lru_cache

import jinja2
from django import template
from django.conf import settings
from django.template.defaultfilters import date as date_filter
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import formats, timezone, translation
from django.utils.html import format_html
from django.utils.timezone import template_localtime
from markupsafe import Markup

from core.links import link_for

register = template.Library()


def _printed(value) -> str:
    """A value as Django's `{{ value }}` prints it, before escaping: local time, then localized (Russian
    decimals take a comma), then `str()` (an object whose str() is safe HTML stays safe)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        value = template_localtime(value)
    return str(formats.localize(value, use_l10n=True))


def _html(value) -> Markup:
    """Printed and escaped as Django escapes (`&#x27;`, `&quot;`, where markupsafe writes `&#39;`, `&#34;`)."""
    if value.__class__ is int:
        return Markup(value)  # as in _finalize: localizing an int (~4 µs) changes nothing; a message's ids are ints
    if not hasattr(value, "__html__"):
        value = _printed(value)
    return Markup(value.__html__() if hasattr(value, "__html__") else html.escape(value))


@jinja2.pass_eval_context
def _finalize(eval_ctx, value):
    """`{{ value }}` as Django prints it (see `_html`)."""
    if value.__class__ is int:
        return value  # ints print the same localized unless thousands are separated (checked below)
    return _html(value) if eval_ctx.autoescape else _printed(value)


def _translated(message: str, variables: dict) -> Markup:
    """A translated message filled in as `{% blocktranslate %}` does: the message as it is, its values
    printed and escaped; without values it is not %-formatted (a literal "%" stays)."""
    if not variables:
        return Markup(message)
    return Markup(message % {name: _html(value) for name, value in variables.items()})


def _gettext(message, **variables):
    return _translated(translation.gettext(message), variables)


def _ngettext(singular, plural, number, **variables):
    variables.setdefault("num", number)
    return _translated(translation.ngettext(singular, plural, number), variables)


def _pgettext(context, message, **variables):
    return _translated(translation.pgettext(context, message), variables)


def _npgettext(context, singular, plural, number, **variables):
    variables.setdefault("num", number)
    return _translated(translation.npgettext(context, singular, plural, number), variables)


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


@lru_cache(maxsize=4096)
def _date(value, fmt: str, language: str | None, zone) -> str:
    # Called only with this language and time zone active (they are part of the key).
    return date_filter(template_localtime(value), fmt)


def memo_date(value, fmt: str) -> str:
    """`{{ value|memo_date("SHORT_DATE_FORMAT") }}`: Django's `date` filter (local time, localized
    format) memoised per value, format, language and time zone: list rows print a date each, and the
    filter costs ~20 µs a call."""
    return _date(value, fmt, translation.get_language(), timezone.get_current_timezone())


class _PageDates(dict):
    def __init__(self, fmt: str):
        super().__init__()
        self._key = (fmt, translation.get_language(), timezone.get_current_timezone())

    def __missing__(self, value) -> str:
        return _date(value, *self._key)  # memo_date with this page's language and zone


def memo_dates(fmt: str) -> _PageDates:
    """`{% set when = memo_dates("DATETIME_FORMAT") %}` ... `{{ when[value] }}` (in Python: `when[value]`): memo_date
    for a page's rows, the language and time zone read once (the memo_date filter reads both on each call, ~4 µs), and a
    subscript, not a call through Jinja2's context (~1 µs): a mapping whose missing keys are formatted."""
    return _PageDates(fmt)


def csrf_input(csrf_token) -> str:
    return format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', csrf_token)


@jinja2.pass_context
def django_include(context, name: str) -> str:
    """`{{ django_include("telegram/partials/notifications_link.html") }}`: a shared Django partial with this context."""
    from django.template.loader import get_template

    return get_template(name, using="django").render(context.get_all())


def environment(**options) -> jinja2.Environment:
    """The `environment` of the Jinja2 entry in settings.TEMPLATES."""
    if settings.USE_THOUSAND_SEPARATOR:
        raise NotImplementedError("core.jinja._finalize prints ints unlocalized: add the thousands separator there")
    options.setdefault("autoescape", True)
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], finalize=_finalize, **options)
    # The i18n extension gives `extract_translations` (scripts/makemessages.py); the callables are ours,
    # filled in and escaped as Django's blocktranslate does (called with keyword values, as newstyle's are).
    env.newstyle_gettext = True
    env.globals.update(_=_gettext, gettext=_gettext, ngettext=_ngettext, pgettext=_pgettext, npgettext=_npgettext)
    env.filters["memo_date"] = memo_date
    env.globals["memo_dates"] = memo_dates
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
