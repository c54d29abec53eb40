"""Maintenance every worker runs in the background: rescue expired leases, fire cron ticks, prune history.

Correctness never depends on which worker does it or how many do: rescue claims rows with SKIP LOCKED and
fences on the lease; each cron tick is claimed through the unique (schedule, tick) key. An advisory lock only
keeps several workers from doing the same cron and pruning work at the same moment.
"""

from __future__ import annotations

import json
import logging
import time

import psycopg

from .. import tracking, validation
from ..conf import setting
from ..exceptions import InvalidSchedule
from ..ids import new_id
from ..queues import DEFAULT_QUEUE
from ..registry import JobHandlerRegistry
from ..telemetry import metrics
from . import sql
from .connection import behind_transaction_pooler
from .cron import next_tick
from .enqueue import enqueue
from .periodic import PeriodicThread

logger = logging.getLogger("jobscheduler.maintenance")

RESCUE_BATCH = 1000
PRUNE_BATCH = 5000
PRUNE_MAX_BATCHES = 200
CRON_BATCH = 100
PRUNE_EVERY_SECONDS = 600.0  # pruning scans history; rescue and cron must stay cheap and frequent


class Maintenance(PeriodicThread):
    """A pass at start-up, then every MAINTENANCE_INTERVAL_SECONDS; pruning at most every PRUNE_EVERY_SECONDS."""

    def __init__(self, *, scheduler: bool = True) -> None:
        super().__init__(
            "maintenance",
            self._pass,
            float(setting("MAINTENANCE_INTERVAL_SECONDS")),
            first_delay=0.0,
            on_connect=_limit_idle_transactions,
        )
        self.scheduler = scheduler
        self._next_prune = 0.0

    def _pass(self, conn: psycopg.Connection) -> None:
        prune = time.monotonic() >= self._next_prune
        run_pass(conn, scheduler=self.scheduler, prune=prune)
        if prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS


def _limit_idle_transactions(conn: psycopg.Connection) -> None:
    """A worker frozen mid-transaction (SIGSTOP) must not hold the lock or row locks for long. Behind a
    transaction pooler the session setting would stay on a shared server connection (and end the site's own
    idle transactions): there the pooler's `idle_transaction_timeout` does this job (docs/operations.md)."""
    if not behind_transaction_pooler():
        conn.execute("SET idle_in_transaction_session_timeout = '5s'")


def run_pass(conn: psycopg.Connection, *, scheduler: bool = True, prune: bool = True) -> dict[str, int]:
    """One maintenance pass on an autocommit connection; returns what it did (for logs and tests)."""
    done = {"rescued": rescue(conn), "expired_workers": 0, "fired": 0, "pruned": 0}
    with conn.transaction():
        if not conn.execute(sql.MAINTENANCE_LOCK).fetchone()[0]:
            return done
        done["expired_workers"] = conn.execute(
            sql.EXPIRE_WORKERS, {"expiry_seconds": float(setting("WORKER_EXPIRY_SECONDS"))}
        ).rowcount
        if scheduler:
            done["fired"] = fire_due_schedules(conn)
    days = setting("RETENTION_DAYS")
    if prune and days is not None:
        done["pruned"] = prune_history(conn, int(days))
    return done


def prune_history(conn: psycopg.Connection, days: int) -> int:
    """Delete finished history older than `days`, in short batches so no lock is held for long."""
    total = 0
    for _ in range(PRUNE_MAX_BATCHES):
        deleted = conn.execute(sql.PRUNE_HISTORY, {"days": days, "limit": PRUNE_BATCH}).rowcount
        total += deleted
        if deleted < PRUNE_BATCH:
            break
    conn.execute(sql.PRUNE_WORKFLOWS, {"days": days})
    return total


def rescue(conn: psycopg.Connection) -> int:
    total = 0
    while True:
        rows = conn.execute(sql.RESCUE, {"limit": RESCUE_BATCH}).fetchall()
        for job_id, outcome, _ in rows:
            logger.warning(
                "Rescued job %s from a lost worker (%s)",
                job_id,
                outcome,
                extra={"action": "rescue", "job_id": str(job_id), "outcome": outcome},
            )
            metrics.observe_rescued(outcome)
        total += len(rows)
        if len(rows) < RESCUE_BATCH:
            return total


def fire_due_schedules(conn: psycopg.Connection) -> int:
    """Enqueue one job per due tick, inside the caller's transaction. A tick missed while no worker ran fires
    once, then the schedule moves to its next tick after now (missed ticks are not replayed)."""
    fired = 0
    rows = conn.execute(sql.DUE_SCHEDULES, {"limit": CRON_BATCH}).fetchall()
    for sid, tenant, key, job_name, data, metadata, cron, interval, tz, user, queue, tick, db_now in rows:
        try:
            validation.check_timezone(tz)
            if not interval:
                validation.check_cron(cron)
            following = next_tick(
                cron=cron, interval_seconds=interval, timezone=tz, anchor=tick, after=db_now
            )
        except (InvalidSchedule, ValueError, OverflowError) as exc:
            # A row written by hand (or by an older version) that cannot be evaluated: park it, visibly.
            conn.execute(sql.PAUSE_BROKEN_SCHEDULE, {"schedule_id": sid})
            logger.error(
                "Schedule %s of tenant %s paused: it cannot be evaluated (%s)",
                key,
                tenant,
                exc,
                extra={"action": "cron_broken", "key": key, "tenant": str(tenant), "schedule_id": str(sid)},
            )
            continue
        job_id = new_id()
        claimed = conn.execute(sql.FIRE_TICK, {"schedule_id": sid, "tick": tick, "job_id": job_id}).fetchone()
        if claimed:
            spec = JobHandlerRegistry.find(job_name)
            max_attempts = spec.retry.max_attempts if spec else 3
            queue = queue or (spec.queue if spec else DEFAULT_QUEUE)
            meta = tracking.build_metadata(
                json.dumps(data if isinstance(data, dict) else {}, separators=(",", ":")),
                extra={**(metadata or {}), "scheduleKey": key, "tick": tick.isoformat()},
                max_attempts=max_attempts,
                schedule_id=sid,
                queue=queue,
                timeout_ms=spec.timeout_ms if spec else None,
            )
            with conn.cursor() as cur:
                enqueue(
                    cur,
                    job_name=job_name,
                    queue=queue,
                    tenants=[tenant],
                    ids=[job_id],
                    metas=[meta],
                    user=user,
                    max_attempts=max_attempts,
                )
            fired += 1
            # Keys repeat across tenants (one schedule per tenant is the common case): name both, and the job.
            logger.info(
                "Schedule %s of tenant %s fired for tick %s: job %s",
                key,
                tenant,
                tick.isoformat(),
                job_id,
                extra={
                    "action": "cron_fire",
                    "key": key,
                    "tenant": str(tenant),
                    "schedule_id": str(sid),
                    "tick": tick.isoformat(),
                    "job_id": str(job_id),
                },
            )
        conn.execute(
            sql.ADVANCE_SCHEDULE,
            {
                "schedule_id": sid,
                "next_run_at": following,
                "tick": tick,
                "job_id": job_id if claimed else None,
            },
        )
    return fired
