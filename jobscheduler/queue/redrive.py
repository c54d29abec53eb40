"""Bulk retry and cancel on the pgboss queue: one statement per bounded batch of job ids, on the caller's
Django connection (see `runners/redrive.py` for the batching and the audit)."""

from __future__ import annotations

import json
import uuid

from django.db import connection

from ..models import JobStatus
from ..registry import JobHandlerRegistry
from ..states import RunnerType
from . import sql


def retry_batch(tenant: uuid.UUID, ids: list[uuid.UUID]) -> int:
    """Re-enqueue the finished jobs among `ids` as new jobs; how many were enqueued (a job whose handler is not
    registered here is left)."""
    attempts = {name: JobHandlerRegistry.get(name).retry.max_attempts for name in JobHandlerRegistry.names()}
    params = {
        "tenant": tenant,
        "ids": ids,
        "max_attempts": json.dumps(attempts),
        "status": JobStatus.QUEUED,
        "runner_type": RunnerType.PGBOSS,
    }
    with connection.cursor() as cur:
        cur.execute(sql.REDRIVE_RETRY, params)
        return cur.fetchone()[0]


def cancel_batch(
    tenant: uuid.UUID, ids: list[uuid.UUID], reason: str, cancelled_by: str | None
) -> tuple[int, int]:
    """Cancel the live jobs among `ids`: (cancelled at once, running and told to stop)."""
    params = {"tenant": tenant, "ids": ids, "reason": reason, "cancelled_by": cancelled_by}
    with connection.cursor() as cur:
        cur.execute(sql.REDRIVE_CANCEL, params)
        cancelled, flagged = cur.fetchone()
    return cancelled, flagged
