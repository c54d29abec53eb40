"""Small SQL helpers on a dedicated psycopg connection (not Django's: polling must not touch its state)."""

from __future__ import annotations

from typing import Any

import psycopg

#: Everything a run leaves behind; CASCADE follows the foreign keys of details and schedule runs.
CLEAN_SQL = (
    "TRUNCATE jobscheduler_queue, job_details, jobs, jobscheduler_workers, jobscheduler_schedule_runs CASCADE"
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


class Db:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

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

    def close(self) -> None:
        self.conn.close()
