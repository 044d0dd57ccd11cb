"""One date format and one date-time format per language: a page asking for DATE_FORMAT in one place
and SHORT_DATE_FORMAT in another shows the same text (it mixed "12/04/2026" and "Dec. 4, 2026")."""
from datetime import datetime, timezone as dt_timezone

import pytest
from django.template import Context, Template
from django.utils import translation

MOMENT = datetime(2026, 12, 4, 14, 30, tzinfo=dt_timezone.utc)
TEMPLATE = Template('{{ m|date:"DATE_FORMAT" }}|{{ m|date:"SHORT_DATE_FORMAT" }}|{{ m|date }}|'
                    '{{ m|date:"DATETIME_FORMAT" }}|{{ m|date:"SHORT_DATETIME_FORMAT" }}')


@pytest.mark.parametrize("language,day,moment", [
    ("en", "12/04/2026", "12/04/2026 2:30 p.m."),
    ("ru", "04.12.2026", "04.12.2026 14:30"),
])
def test_long_and_short_formats_are_the_same_per_language(settings, language, day, moment):
    settings.TIME_ZONE = "UTC"
    with translation.override(language):
        assert TEMPLATE.render(Context({"m": MOMENT})).split("|") == [day, day, day, moment, moment]
