"""deploy/backup and deploy/restore, end to end: back up a seeded database and its media, restore
both into a new database and directory, and prove the copy (row counts, ledger audit, media bytes)."""
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import UserFactory
from billing.models import LedgerEntry
from billing.tests.factories import make_currencies
from orders.models import Order, OrderRenewal
from orders.services import renewal_batch
from orders.tests.factories import PlanFactory
from orders.tests.test_renewals import fund
from portal.tests.faults.conftest import database_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def pg_bin_for_server() -> str:
    """A directory whose pg_dump/pg_restore are at least as new as the server (the machine's, or the
    embedded pgserver wheel's)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        server_major = int(cursor.fetchone()[0]) // 10000
    candidates = []
    if shutil.which("pg_dump"):
        candidates.append(Path(shutil.which("pg_dump")).parent)
    try:
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for directory in candidates:
        version = subprocess.run([directory / "pg_dump", "--version"], capture_output=True, text=True).stdout
        match = re.search(r"(\d+)\.", version)
        if match and int(match.group(1)) >= server_major:
            return str(directory)
    raise AssertionError(f"no pg_dump >= {server_major} among {candidates}")


def row_counts(url: str) -> dict[str, int]:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        counts = {}
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cur.fetchone()[0]
    conn.close()
    return counts


@pytest.fixture
def restore_database():
    name = f"{connection.settings_dict['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield database_url({**connection.settings_dict, "NAME": name})
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_restores_into_a_new_database_that_passes_the_ledger_audit(tmp_path, restore_database):
    # A seeded portal: a funded customer whose order auto-renewed (payments, invoices, ledger legs).
    make_currencies()
    user = UserFactory()
    fund(user.customer, "100.00")
    start = timezone.now() - timedelta(days=31)
    Order.objects.create(customer=user.customer, plan=PlanFactory(), period_months=1, price=Decimal("10.00"),
                         currency="EUR", status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE,
                         anchor_at=start, anchor_months=1, period_started_at=start, expires_at=timezone.now(),
                         current_period=1)
    assert renewal_batch.renewals_run().renewed == 1
    assert LedgerEntry.objects.count() >= 4 and OrderRenewal.objects.count() == 1
    media = tmp_path / "media"
    (media / "private" / "tickets").mkdir(parents=True)
    (media / "private" / "tickets" / "invoice-scan.pdf").write_bytes(b"%PDF-1.4 scan")

    source = database_url()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "PG_BIN": pg_bin_for_server(),
           "PYTHON": sys.executable, "BACKUP_DIR": str(tmp_path / "backups"), "MEDIA_ROOT": str(media),
           "BACKUP_KEEP_DAYS": "14"}
    backup = subprocess.run([ROOT / "deploy" / "backup"], env={**env, "DATABASE_URL": source},
                            capture_output=True, text=True)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    [dump] = (tmp_path / "backups").glob("portal-*.dump")
    [snapshot] = (tmp_path / "backups").glob("media-*")
    assert (tmp_path / "backups" / f"{dump.name}.sha256").exists()

    restored_media = tmp_path / "restored-media"
    restore = subprocess.run([ROOT / "deploy" / "restore", dump, snapshot],
                             env={**env, "RESTORE_DATABASE_URL": restore_database, "DATABASE_URL": "unused://",
                                  "MEDIA_ROOT": str(restored_media)},
                             cwd=tmp_path, capture_output=True, text=True)
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert "Ledger audit passed." in restore.stdout
    printed = dict(line.split()[1:] for line in restore.stdout.splitlines() if line.startswith("rows "))
    source_counts = row_counts(source)
    assert {table: int(count) for table, count in printed.items()} == source_counts
    assert source_counts["billing_ledgerentry"] >= 4 and source_counts["orders_orderrenewal"] == 1
    assert (restored_media / "private" / "tickets" / "invoice-scan.pdf").read_bytes() == b"%PDF-1.4 scan"

    # A second restore into the now non-empty database is refused and changes nothing.
    again = subprocess.run([ROOT / "deploy" / "restore", dump], env={**env, "RESTORE_DATABASE_URL": restore_database},
                           capture_output=True, text=True)
    assert again.returncode == 65 and "already has" in again.stderr
    restored = row_counts(restore_database)
    restored.pop("ops_heartbeat")  # the audit it ran recorded its result
    assert restored == {t: c for t, c in source_counts.items() if t != "ops_heartbeat"}


def test_backup_deletes_dumps_past_retention_but_keeps_the_new_one(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "portal-20200101T000000Z.dump"
    old.write_bytes(b"old")
    os.utime(old, (0, 0))
    env = {**os.environ, "PG_BIN": pg_bin_for_server(), "BACKUP_DIR": str(backups), "BACKUP_KEEP_DAYS": "1",
           "BACKUP_DATABASE_URL": database_url()}
    env.pop("MEDIA_ROOT", None)
    result = subprocess.run([ROOT / "deploy" / "backup"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not old.exists()
    assert len(list(backups.glob("portal-*.dump"))) == 1
