"""Putting jobs in the queue: one statement for any number of jobs of one name, on any cursor; and one job alone
on Django's connection, by the cheapest path there is (jobscheduler/libpq.py).

The runner calls them on Django's connection (so they join the caller's transaction); the cron scheduler calls
`enqueue` on the worker's own connection inside the transaction that claims the tick.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from .. import libpq
from ..states import RunnerType
from . import sql

_ENQUEUE_ONE = libpq.Statement.of("jobscheduler_enqueue_one", sql.ENQUEUE_ONE)


def enqueue(
    cursor,
    *,
    job_name: str,
    queue: str,
    tenants: list[uuid.UUID],
    ids: list[uuid.UUID],
    metas: list[str],
    user: uuid.UUID,
    priority: int = 0,
    run_at: datetime | None = None,
    max_attempts: int = 3,
    singleton_key: str | None = None,
) -> list[uuid.UUID]:
    """Returns the ids inserted (none when a live job already holds the singleton key).

    `metas` are JSON texts (validated by the caller), spliced into the one JSON parameter, not re-encoded."""
    texts: dict[uuid.UUID, str] = {}  # a batch has one tenant, or a few: each one's text made once
    items = ",".join(
        f'{{"tenant":"{texts.get(tenant) or texts.setdefault(tenant, str(tenant))}","id":"{job_id}","meta":{meta}}}'
        for tenant, job_id, meta in zip(tenants, ids, metas, strict=True)
    )
    cursor.execute(
        sql.ENQUEUE,
        {
            "items": f"[{items}]",
            "type": job_name,
            "queue": queue,
            "user_id": user,
            "priority": priority,
            "run_at": run_at,
            "max_attempts": max_attempts,
            "singleton_key": singleton_key,
            "status": "queued",
            "runner_type": "pgboss",
        },
    )
    row = cursor.fetchone()
    return list(row[0] or []) if row else []


def enqueue_one(
    *,
    job_name: str,
    queue: str,
    tenant: uuid.UUID,
    job_id: uuid.UUID,
    meta: str,
    user: uuid.UUID,
    priority: int = 0,
    run_at: datetime | None = None,
    max_attempts: int = 3,
    singleton_key: str | None = None,
) -> bool:
    """Enqueue one job on Django's connection; False when a live job already holds the singleton key.

    `meta` is JSON text (validated by the caller), sent as it is."""
    return (
        libpq.first_value(
            _ENQUEUE_ONE,
            {
                "job_id": job_id,
                "tenant": tenant,
                "type": job_name,
                "queue": queue,
                "priority": priority,
                "run_at": run_at,
                "max_attempts": max_attempts,
                "singleton_key": singleton_key,
                "metadata": meta,
                "user_id": user,
                "status": "queued",
                "runner_type": RunnerType.PGBOSS,
            },
        )
        is not None
    )
