"""core.jinja: the Jinja2 environment prints values as Django's templates do, and every message of
every Jinja2 template is in a catalogue (scripts/makemessages.py extracts them with Jinja2's extractor)."""
import datetime
import zoneinfo
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.template import Context, Template, TemplateSyntaxError, engines
from django.utils import timezone, translation

ROOT = Path(__file__).resolve().parent.parent.parent
JINJA_TEMPLATES = sorted(p for p in ROOT.glob("**/jinja2/**/*.jinja.html") if ".venv" not in p.parts)


def render(source: str, **context) -> str:
    return engines["jinja2"].env.from_string(source).render(context)


def test_values_print_as_in_django_templates():
    moment = datetime.datetime(2027, 1, 1, 0, 30, tzinfo=datetime.UTC)  # still Dec 31 west of Greenwich
    context = {"amount": Decimal("1234.50"), "day": datetime.date(2028, 2, 29), "moment": moment, "n": 7,
               "nothing": None, "text": "<b title='x' class=\"y\">&"}
    source = "{{ amount }}|{{ day }}|{{ moment }}|{{ n }}|{{ nothing }}|{{ text }}"
    for language, zone in (("en", "UTC"), ("ru", "Europe/Moscow"), ("en", "America/New_York")):
        with translation.override(language), timezone.override(zoneinfo.ZoneInfo(zone)):
            django_output = Template(source).render(Context(context))
            assert render(source, **context) == django_output
    with translation.override("ru"):
        assert render("{{ amount }}", amount=Decimal("1.50")) == "1,50"


def test_django_filters_get_local_time_and_arguments():
    moment = datetime.datetime(2027, 1, 1, 0, 30, tzinfo=datetime.UTC)
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert render('{{ moment|date("Y-m-d H:i") }}', moment=moment) == "2026-12-31 19:30"
    with translation.override("en"):
        assert render('{{ 5|money("EUR") }}') == "€5.00"
    assert render("{{ text|linebreaksbr }}", text="<a>\nb") == "&lt;a&gt;<br>b"  # needs_autoescape
    assert render("{{ 7|link('orders:order_detail') }}") == "/orders/7/"
    assert render("{{ [1, 2]|length }}") == "2"  # Jinja's own builtins keep their names


def test_messages_follow_the_active_language():
    with translation.override("ru"):
        assert render('{{ _("Orders") }}') == "Заказы"
        assert render('{{ ngettext("%(n)s period", "%(n)s periods", 2, n=2) }}') == "2 периода"
    with translation.override("en"):
        assert render('{{ _("Orders") }}') == "Orders"


def test_messages_with_values_are_filled_in_as_blocktranslate_does():
    values = {"number": Decimal("2.50"), "query": "<a href=\"x\">it's</a>"}
    source = '{% blocktranslate with n=number q=query %}Page {{ n }} of {{ q }}{% endblocktranslate %}'
    for language in ("en", "ru"):
        with translation.override(language):
            assert (render('{{ _("Page %(n)s of %(q)s", n=number, q=query) }}', **values)
                    == Template("{% load i18n %}" + source).render(Context(values)))
    assert render('{{ _("100% sure") }}') == "100% sure"  # no values: no %-formatting


def test_the_jinja_tag_renders_with_the_django_context():
    template = engines["django"].from_string('{% load jinja %}{% jinja "orders/order_list.jinja.html" %}')
    assert template.template.nodelist[-1].name == "orders/order_list.jinja.html"
    with pytest.raises(TemplateSyntaxError):
        engines["django"].from_string("{% load jinja %}{% jinja orders/order_list.jinja.html %}")


def _catalogue_ids() -> set[tuple[str | None, str]]:
    """(context, msgid) of every Russian catalogue entry."""
    ids = set()
    for path in ROOT.glob("**/locale/ru/LC_MESSAGES/django.po"):
        if ".venv" in path.parts:
            continue
        with path.open("rb") as handle:
            ids.update((m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(handle) if m.id)
    return ids


def test_jinja_templates_are_found():
    assert any(p.name == "order_list.jinja.html" for p in JINJA_TEMPLATES)


@pytest.mark.parametrize("path", JINJA_TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_message_is_in_a_catalogue(path):
    """What Jinja2's extractor finds (gettext with placeholders, ngettext, pgettext) is in a Russian
    catalogue: a message added without running scripts/makemessages.py (and translating) fails here."""
    wanted = set()
    for _line, func, message in engines["jinja2"].env.extract_translations(path.read_text()):
        strings = message if isinstance(message, tuple) else (message,)
        wanted.add((strings[0], strings[1]) if func in ("pgettext", "npgettext") else (None, strings[0]))
    missing = wanted - _catalogue_ids()
    assert not missing, f"not in any catalogue (run scripts/makemessages.py, then translate): {sorted(missing)}"


def test_memo_date_prints_as_the_date_filter_in_each_zone_and_language():
    moment = datetime.datetime(2027, 1, 1, 0, 30, tzinfo=datetime.UTC)
    for language, zone in (("en", "UTC"), ("ru", "Europe/Moscow"), ("en", "America/New_York")):
        with translation.override(language), timezone.override(zoneinfo.ZoneInfo(zone)):
            for fmt in ("SHORT_DATE_FORMAT", "SHORT_DATETIME_FORMAT"):
                assert render("{{ m|memo_date(f) }}", m=moment, f=fmt) == render("{{ m|date(f) }}", m=moment, f=fmt)
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert render('{{ m|memo_date("Y-m-d") }}', m=moment) == "2026-12-31"  # the cache keys on the zone


def test_memo_dates_prints_as_the_date_filter_with_the_pages_language_and_zone():
    moments = [datetime.datetime(2027, 1, 1, 0, 30, tzinfo=datetime.UTC), datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.UTC)]
    source = '{% set when = memo_dates(f) %}{% for m in moments %}{{ when[m] }};{% endfor %}'
    for language, zone in (("en", "UTC"), ("ru", "Europe/Moscow"), ("en", "America/New_York")):
        with translation.override(language), timezone.override(zoneinfo.ZoneInfo(zone)):
            for fmt in ("c", "DATETIME_FORMAT", "SHORT_DATE_FORMAT"):
                expected = "".join(render("{{ m|date(f) }};", m=m, f=fmt) for m in moments)
                assert render(source, moments=moments, f=fmt) == expected
    with translation.override("en"), timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert render('{{ memo_dates("Y-m-d")[m] }}', m=moments[0]) == "2026-12-31"
