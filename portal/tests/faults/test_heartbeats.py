"""A real beat and a real worker write heartbeats; /healthz sees them alive and notices when the
worker is killed (kill -9, as when its host dies)."""
import os
import signal

import pytest

from ops.heartbeats import BEAT
from ops.selectors import heartbeat_seen_at, worker_heartbeats

from .conftest import BIN, app_env, database_url, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow_fault]


def test_beat_and_worker_heartbeats_drive_healthz(client, settings, processes, throwaway_redis, tmp_path):
    settings.HEALTHZ_TOKEN = "monitor-token"  # the error texts, not just "fail"
    settings.HEALTHZ_BEAT_MAX_AGE = settings.HEALTHZ_WORKER_MAX_AGE = 4
    env = app_env(database=database_url(), redis=throwaway_redis.url, OPS_HEARTBEAT_INTERVAL=1)
    worker = processes.worker("heartbeat", env)
    processes.spawn("beat", [str(BIN / "celery"), "-A", "portal", "beat", "--loglevel", "INFO",
                             "--schedule", str(tmp_path / "beat-schedule")], env)

    wait_for(lambda: heartbeat_seen_at(name=BEAT) and worker_heartbeats().get("heartbeat@faults"), 60,
             "beat and worker heartbeats")
    first = worker_heartbeats()["heartbeat@faults"]
    wait_for(lambda: worker_heartbeats()["heartbeat@faults"] > first, 10, "a second worker heartbeat")
    response = client.get("/healthz?require=beat,workers", HTTP_AUTHORIZATION="Bearer monitor-token")
    assert response.status_code == 200, response.json()

    os.killpg(worker.pid, signal.SIGKILL)
    wait_for(lambda: client.get("/healthz?require=beat,workers", HTTP_AUTHORIZATION="Bearer monitor-token").status_code == 503, 15, "healthz to notice")
    body = client.get("/healthz?require=beat,workers", HTTP_AUTHORIZATION="Bearer monitor-token").json()
    assert body["failing"] == ["workers"] and body["checks"]["beat"] == "ok"
    assert body["checks"]["workers"].startswith("last worker heartbeat")
