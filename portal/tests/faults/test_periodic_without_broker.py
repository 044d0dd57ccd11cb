"""The cron alternative to beat: `manage.py run_periodic` runs beat's entries in-process, no broker."""
import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db


def test_lists_every_beat_entry():
    out = io.StringIO()
    call_command("run_periodic", "--list", stdout=out)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == list(settings.CELERY_BEAT_SCHEDULE)


def test_runs_entries_in_process():
    out = io.StringIO()
    call_command("run_periodic", "tickets-autoclose", "billing-low-balance-sweep", stdout=out)
    assert out.getvalue().splitlines() == ["tickets-autoclose: {'warned': 0, 'closed': 0}", "billing-low-balance-sweep: 0"]


def test_unknown_entry_is_an_error():
    with pytest.raises(CommandError, match="nope"):
        call_command("run_periodic", "nope")
