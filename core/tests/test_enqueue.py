"""core.enqueue: a task is published after the commit, never for a rolled-back transaction, and a broker that
refuses it is logged, not raised (the real broker outage is exercised in notifications/tests/test_delivery.py)."""
import pytest
from django.db import transaction

from core.enqueue import enqueue_task_on_commit


class RecordingTask:
    name = "core.tests.recording_task"

    def __init__(self, error: Exception | None = None):
        self.published: list[dict] = []
        self.error = error

    def apply_async(self, *, kwargs: dict) -> None:
        if self.error is not None:
            raise self.error
        self.published.append(kwargs)


@pytest.mark.django_db(transaction=True)
def test_the_task_is_published_after_the_commit():
    task = RecordingTask()
    with transaction.atomic():
        enqueue_task_on_commit(task, job_id=7)
        assert task.published == []
    assert task.published == [{"job_id": 7}]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_publishes_nothing():
    task = RecordingTask()
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_task_on_commit(task, job_id=7)
        raise RuntimeError
    assert task.published == []


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_is_published_at_once():
    task = RecordingTask()
    enqueue_task_on_commit(task, job_id=7)
    assert task.published == [{"job_id": 7}]


@pytest.mark.django_db(transaction=True)
def test_a_broker_error_after_commit_is_logged_not_raised(caplog):
    task = RecordingTask(error=ConnectionRefusedError("broker down"))
    with transaction.atomic():
        enqueue_task_on_commit(task, job_id=7)
    assert "Could not enqueue core.tests.recording_task" in caplog.text
