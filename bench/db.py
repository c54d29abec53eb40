"""Small SQL helpers on a dedicated psycopg connection (not Django's: polling must not touch its state)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

#: Everything a run leaves behind; CASCADE follows the foreign keys of details and schedule runs.
CLEAN_SQL = (
    "TRUNCATE jobscheduler_queue, job_details, jobs, jobscheduler_workers, jobscheduler_schedule_runs, "
    "jobscheduler_workflows, jobscheduler_dependencies CASCADE"
)

#: Jobs left in the queue table; a queue row is deleted in the same statement that records the final status.
REMAINING_SQL = "SELECT count(*) FROM jobscheduler_queue"

#: The "fully recorded" check: status, start and end times in metadata, and both execution steps.
RECORDED_SQL = """
SELECT
  (SELECT count(*) FROM jobs WHERE type = %(name)s),
  (SELECT count(*) FROM jobs WHERE type = %(name)s AND status = 'completed'),
  (SELECT count(*) FROM jobs WHERE type = %(name)s AND status = 'completed'
      AND metadata ? 'startedAt' AND metadata ? 'completedAt'
      AND (metadata->>'completedAt')::timestamptz >= (metadata->>'startedAt')::timestamptz),
  (SELECT count(DISTINCT d.job_id) FROM job_details d JOIN jobs j USING (tenant, job_id)
      WHERE j.type = %(name)s AND d.step_name = 'execution_started'),
  (SELECT count(DISTINCT d.job_id) FROM job_details d JOIN jobs j USING (tenant, job_id)
      WHERE j.type = %(name)s AND d.step_name = 'execution_completed'),
  (SELECT count(*) FROM jobscheduler_queue)
"""


#: Server-wide counters behind the per-job costs: commits of this database, WAL records, bytes and flushes.
COUNTERS_SQL = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
       wal_records, wal_bytes, wal_sync, wal_write, wal_sync_time
FROM pg_stat_wal
"""
COUNTER_NAMES = ("commits", "wal_records", "wal_bytes", "wal_syncs", "wal_writes", "wal_sync_ms")


#: Rows written per table (and how many indexes each has): a new row adds one entry to every index.
TABLE_WRITES_SQL = """
SELECT s.relname, s.n_tup_ins, s.n_tup_upd, s.n_tup_hot_upd, s.n_tup_del,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid)
FROM pg_stat_user_tables s
"""


#: Autovacuum workers running now: their WAL would be counted against the jobs of the phase measured.
AUTOVACUUM_SQL = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"


class Db:
    """The bench's observer connection: polls, checks and counters, never part of what is measured."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        # Keep the observer's own statements out of the statement log the profiles read.
        self.conn.execute("SET log_min_duration_statement = -1")

    def scalar(self, sql: str, params: Any = None) -> Any:
        return self.conn.execute(sql, params).fetchone()[0]

    def row(self, sql: str, params: Any = None) -> tuple:
        return self.conn.execute(sql, params).fetchone()

    def execute(self, sql: str, params: Any = None) -> None:
        self.conn.execute(sql, params)

    def clean(self) -> None:
        self.conn.execute(CLEAN_SQL)

    def remaining(self) -> int:
        return self.scalar(REMAINING_SQL)

    def recorded(self, name: str, n: int) -> dict[str, Any]:
        total, completed, timed, started, finished, left = self.row(RECORDED_SQL, {"name": name})
        ok = total == n and completed == n and timed == n and started == n and finished == n and left == 0
        return {
            "ok": ok,
            "expected": n,
            "jobs": total,
            "completed": completed,
            "with_startedAt_completedAt": timed,
            "execution_started_rows": started,
            "execution_completed_rows": finished,
            "queue_rows_left": left,
        }

    def counters(self) -> tuple:
        """Snapshot of COUNTERS_SQL once the server is quiet.

        Backends publish their statistics at most once a second, so this waits a little over that, and for
        running autovacuum workers to finish (up to 60 s). The driver's own Django connection is asked to
        publish at once (pg_stat_force_next_flush), as the enqueue phases run on it.
        """
        _flush_django()
        deadline = time.monotonic() + 60
        while self.scalar(AUTOVACUUM_SQL) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.1)
        return self.row(COUNTERS_SQL)

    @staticmethod
    def per_job(before: tuple, after: tuple, n: int) -> dict[str, float]:
        """What each of n jobs cost the server between two snapshots (the machine's other work included)."""
        return {k: (float(a) - float(b)) / n for k, a, b in zip(COUNTER_NAMES, after, before, strict=True)}

    def table_writes(self) -> dict[str, tuple[int, ...]]:
        """Per table: (inserted, updated, HOT-updated, deleted, indexes); read after counters() has waited."""
        return {name: tuple(rest) for name, *rest in self.conn.execute(TABLE_WRITES_SQL).fetchall()}

    @staticmethod
    def writes_per_job(before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]], n: int):
        """Rows inserted/updated/deleted per job in each table touched, and the index entries that adds.

        An insert adds an entry to every index of its table, and so does an update that is not HOT.
        """
        tables: dict[str, dict[str, float]] = {}
        entries = 0.0
        for name, (ins, upd, hot, dele, indexes) in after.items():
            b_ins, b_upd, b_hot, b_del, _ = before.get(name, (0, 0, 0, 0, indexes))
            d = {
                "inserted": ins - b_ins,
                "updated": upd - b_upd,
                "hot_updated": hot - b_hot,
                "deleted": dele - b_del,
            }
            if any(d.values()):
                tables[name] = {k: v / n for k, v in d.items()} | {"indexes": indexes}
                entries += (d["inserted"] + d["updated"] - d["hot_updated"]) * indexes / n
        return {"tables": tables, "index_entries_per_job": entries}

    def close(self) -> None:
        self.conn.close()


def _flush_django() -> None:
    from django.db import connection

    if connection.connection is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
