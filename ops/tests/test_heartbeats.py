"""Heartbeat rows: one per process, upserted; gone workers forgotten after a week."""
import datetime as dt

import pytest
import time_machine

from ops.heartbeats import WORKER_FORGET_AFTER, _prune_workers
from ops.models import Heartbeat
from ops.selectors import worker_heartbeats
from ops.services import heartbeat_record

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
pytestmark = pytest.mark.django_db


def test_heartbeat_is_one_row_per_name_moved_forward():
    with time_machine.travel(NOW, tick=False) as clock:
        heartbeat_record(name="worker:a@host")
        clock.shift(dt.timedelta(seconds=15))
        heartbeat_record(name="worker:a@host")
    assert Heartbeat.objects.count() == 1
    assert worker_heartbeats() == {"a@host": NOW + dt.timedelta(seconds=15)}


def test_workers_gone_for_a_week_are_pruned_and_beat_is_kept():
    with time_machine.travel(NOW, tick=False) as clock:
        heartbeat_record(name="worker:old-container@abc123")
        heartbeat_record(name="beat")
        clock.shift(WORKER_FORGET_AFTER + dt.timedelta(minutes=1))
        heartbeat_record(name="worker:new-container@def456")
        _prune_workers()
    assert set(worker_heartbeats()) == {"new-container@def456"}
    assert Heartbeat.objects.filter(name="beat").exists()
