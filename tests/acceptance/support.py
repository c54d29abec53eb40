"""Small helpers shared by the acceptance tests: draining, reading the record, restarting the database."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import psycopg

from tests.support.processes import ROOT, libpq_url, wait_for


def query(sql: str, params=None) -> list[tuple]:
    """A read on a connection of our own (the test's Django connection may be mid-transaction or broken)."""
    with psycopg.connect(libpq_url()) as conn:
        return conn.execute(sql, params).fetchall()


def live_count(ids) -> int:
    """Committed jobs not yet final, plus rows left in the queue table."""
    ids = [uuid.UUID(str(i)) for i in ids]
    return query(
        "SELECT (SELECT count(*) FROM jobs WHERE job_id = ANY(%s) AND status NOT IN "
        "('completed', 'failed', 'cancelled')) + (SELECT count(*) FROM jobscheduler_queue)",
        [ids],
    )[0][0]


def drain(ids, timeout: float, pool=None) -> None:
    """Wait until every committed job reached a final state and the queue is empty."""
    try:
        wait_for(lambda: live_count(ids) == 0, timeout=timeout, interval=0.2, message="the drain")
    except AssertionError:
        left = query(
            "SELECT status::text, count(*) FROM jobs WHERE job_id = ANY(%s) GROUP BY 1",
            [[uuid.UUID(str(i)) for i in ids]],
        )
        raise AssertionError(f"not drained: {left}\n{pool.logs() if pool else ''}") from None


def worker_id_of(worker) -> str:
    """The worker id from its start-up banner."""
    match = re.search(r"jobscheduler worker (\S+): backend", worker.output())
    assert match, worker.output()
    return match.group(1)


def pid_of_worker_id(worker_id: str) -> int | None:
    """Worker ids are `host:pid:random`."""
    parts = (worker_id or "").split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def embedded_data_dir() -> Path | None:
    """The embedded PostgreSQL's data folder, or None when the tests run on an external DATABASE_URL."""
    if os.environ.get("DATABASE_URL"):
        return None
    base = Path(os.environ.get("JOBSCHEDULER_DATA_DIR") or ROOT / ".data")
    if not base.is_absolute():
        base = ROOT / base
    return base / "pg"


def restart_embedded_postgres(data_dir: Path) -> None:
    """`pg_ctl restart -m fast` on the embedded server, as the OS user pgserver runs it as (root -> pgserver)."""
    from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(
        ["-w", "-m", "fast", "-l", str(data_dir / "log"), "restart"], pgdata=data_dir, user=user, timeout=60
    )
