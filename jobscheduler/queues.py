"""Named queues: the name every job carries, how a name is checked, and each queue's live settings.

Every job belongs to one queue: the one its schedule call names (`queue=`), else its handler's
(`@job_handler(..., queue=...)`), else `"default"`. The name is recorded with the job (`jobs.metadata.queue`,
and the pgboss queue row's `queue` column), so a worker can serve a subset of queues and the dashboard can
filter and count by queue.

Names are short identifiers because they travel everywhere: worker command lines (`--queues emails:5`, hence
no `:` or `,`), Temporal task queue names, URLs of the dashboard.

A queue's live settings (paused) sit in `jobscheduler_queues`, one row per queue that has any, and are read by
every claim, so a change applies on every worker without a restart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone as dj_timezone

from .exceptions import InvalidQueue

DEFAULT_QUEUE = "default"
MAX_QUEUE_NAME = 100

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_queue_name(name: Any) -> str:
    """The name itself, or InvalidQueue saying what a name may be."""
    if isinstance(name, str) and len(name) <= MAX_QUEUE_NAME and _NAME.fullmatch(name):
        return name
    raise InvalidQueue(
        f"Invalid queue name: {name!r} (1-{MAX_QUEUE_NAME} letters, digits, '_', '-' or '.', "
        "starting with a letter or digit)"
    )


#: The advisory lock every pgboss claim holds (shared) from before its snapshot to its commit. A change to a
#: queue's live settings takes it exclusively once the change is committed: when that returns, every claim that
#: could have read the old settings has finished, and every later claim reads the new ones.
CONFIG_BARRIER_KEY = "jobscheduler_queue_config"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueState:
    """A queue's live settings as every worker applies them now."""

    name: str
    paused: bool = False
    updated_at: datetime | None = None


def get_queue(name: str) -> QueueState:
    """The live settings of a queue (a queue without a row: not paused)."""
    from .models import Queue

    name = check_queue_name(name)
    row = Queue.objects.filter(name=name).first()
    return _state(row) if row else QueueState(name=name)


def list_queues(names: Iterable[str] = ()) -> list[QueueState]:
    """Every queue with a row, plus `names` (queues known otherwise, e.g. from handlers), sorted by name."""
    from .models import Queue

    rows = {row.name: _state(row) for row in Queue.objects.all()}
    for name in names:
        rows.setdefault(name, QueueState(name=name))
    return [rows[name] for name in sorted(rows)]


def set_paused(name: str, paused: bool) -> QueueState:
    """Pause or resume a queue on every worker. Waiting jobs stay queued, enqueueing still works, running jobs
    finish. Once the change is committed (at once, or when the caller's transaction commits), no claim starts a
    job of a paused queue."""
    from .models import Queue

    name = check_queue_name(name)
    row, _ = Queue.objects.update_or_create(
        name=name, defaults={"paused": paused, "updated_at": dj_timezone.now()}
    )
    transaction.on_commit(wait_for_claims_in_flight)
    return _state(row)


def wait_for_claims_in_flight() -> None:
    """Return once every claim that began before now has committed (see CONFIG_BARRIER_KEY)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [CONFIG_BARRIER_KEY])


def _state(row: Any) -> QueueState:
    return QueueState(name=row.name, paused=row.paused, updated_at=row.updated_at)
