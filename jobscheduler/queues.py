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

from django.core.exceptions import ImproperlyConfigured
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


def parse_served_queues(text: str) -> dict[str, int | None]:
    """`runjobworker --queues emails:5,default`: the queues a worker serves, each with the most of the worker's
    own slots its jobs may use (None: no cap but the worker's concurrency)."""
    served: dict[str, int | None] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, slots = item.partition(":")
        name = check_queue_name(name.strip())
        if name in served:
            raise InvalidQueue(f"Queue {name!r} is named twice in {text!r}")
        if not slots:
            served[name] = None
        elif slots.strip().isdigit() and int(slots) >= 1:
            served[name] = int(slots)
        else:
            raise InvalidQueue(f"The slots of queue {name!r} must be a positive integer, got {slots!r}")
    if not served:
        raise InvalidQueue(f"No queue named in {text!r}")
    return served


#: The advisory lock every pgboss claim holds (shared) from before its snapshot to its commit. A change to a
#: queue's live settings takes it exclusively once the change is committed: when that returns, every claim that
#: could have read the old settings has finished, and every later claim reads the new ones.
CONFIG_BARRIER_KEY = "jobscheduler_queue_config"


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: `set_limits(..., concurrency=UNCHANGED)`: leave that limit as it is (None removes a limit).
UNCHANGED: Any = _Unchanged()

#: The limits a queue may have (keys of a JOBSCHEDULER["QUEUES"] entry, fields of QueueState).
LIMIT_FIELDS = ("concurrency", "tenant_concurrency", "rate_limit")
SETTING_KEYS = (*LIMIT_FIELDS, "paused")

#: A rate limit's period is counted in this many buckets (see RateLimit).
RATE_BUCKETS = 20
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|m|h|d)\s*")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE_SPELLING = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `starts` jobs of the queue start within any `per_seconds` seconds, across all workers.

    Starts are counted on the database clock in buckets of `per_seconds / RATE_BUCKETS`, and a start counts
    against the limit until the bucket after the one a period later has begun: never more than `starts` in any
    period, and at least `RATE_BUCKETS / (RATE_BUCKETS + 1)` (95 %) of the rate when jobs are always waiting.
    """

    starts: int
    per_seconds: float

    def __str__(self) -> str:
        unit = _RATE_SPELLING.get(self.per_seconds)
        return f"{self.starts}/{unit}" if unit else f"{self.starts}/{self.per_seconds:g}s"


def parse_rate(value: Any) -> RateLimit | None:
    """ "10/s", "100/m", "1000/h", "5/10s", "2/0.5s" (starts per period), a RateLimit, or None (no limit)."""
    if value is None or isinstance(value, RateLimit):
        return value
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match:
        starts, amount, unit = int(match[1]), float(match[2] or 1), match[3]
        period = amount * _UNIT_SECONDS[unit]
        if 1 <= starts <= 1_000_000 and 0.1 <= period <= 7 * 86400:
            return RateLimit(starts, period)
    raise InvalidQueue(
        "rate_limit must be starts per period like '10/s', '100/m', '1000/h' or '5/10s' (1 to 1000000 starts, "
        f"a period of 0.1 s to 7 days) or None, got {value!r}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueState:
    """A queue's live settings as every worker applies them now.

    `concurrency`: at most this many jobs of the queue run at once across all workers (None: no limit).
    `tenant_concurrency`: at most this many per tenant (None: no limit).
    `rate_limit`: at most so many starts per period, across all workers (None: no limit).
    """

    name: str
    concurrency: int | None = None
    tenant_concurrency: int | None = None
    rate_limit: RateLimit | None = None
    paused: bool = False
    updated_at: datetime | None = None

    @property
    def is_limited(self) -> bool:
        return any(getattr(self, field) is not None for field in LIMIT_FIELDS)


def check_limit(value: Any, what: str) -> int | None:
    """A positive integer limit, or None (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise InvalidQueue(f"{what} must be a positive integer or None, got {value!r}")
    return value


def check_field(field: str, value: Any) -> Any:
    return parse_rate(value) if field == "rate_limit" else check_limit(value, field)


def configured_queues() -> dict[str, dict[str, Any]]:
    """JOBSCHEDULER["QUEUES"], checked: {name: {field: value}} (QueueState's fields) for the queues it names."""
    from .conf import setting

    raw = setting("QUEUES")
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(
            f'JOBSCHEDULER["QUEUES"] must be a dict of queue name to settings, got {raw!r}'
        )
    checked = {}
    for name, entry in raw.items():
        where = f'JOBSCHEDULER["QUEUES"][{name!r}]'
        try:
            check_queue_name(name)
            if not isinstance(entry, dict):
                raise InvalidQueue(f"must be a dict, got {entry!r}")
            unknown = set(entry) - set(SETTING_KEYS)
            if unknown:
                raise InvalidQueue(
                    f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (known: {', '.join(SETTING_KEYS)})"
                )
            values = {field: check_field(field, entry.get(field)) for field in LIMIT_FIELDS}
            paused = entry.get("paused", False)
            if not isinstance(paused, bool):
                raise InvalidQueue(f"paused must be True or False, got {paused!r}")
        except InvalidQueue as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from None
        checked[name] = {**values, "paused": paused}
    return checked


#: The django.tasks backend of this app, as a site names it in settings.TASKS.
TASK_BACKEND_PATH = "jobscheduler.tasks.JobSchedulerBackend"


def task_api_queues() -> set[str]:
    """The queues settings.TASKS declares for this app's django.tasks backend (its "QUEUES"; Django's default
    is the one queue "default"): a task's `queue_name` is the job's queue, so a worker must know them."""
    from django.conf import settings

    declared: set[str] = set()
    for entry in (getattr(settings, "TASKS", None) or {}).values():
        if isinstance(entry, dict) and entry.get("BACKEND") == TASK_BACKEND_PATH:
            declared.update(name for name in entry.get("QUEUES") or () if isinstance(name, str))
    return declared


def settings_defaults(name: str) -> dict[str, Any]:
    """The settings a queue starts with: its JOBSCHEDULER["QUEUES"] entry, else no limits (QueueState's fields)."""
    return configured_queues().get(name, {field: None for field in LIMIT_FIELDS} | {"paused": False})


def seed_from_settings() -> int:
    """Give every queue of JOBSCHEDULER["QUEUES"] its row when it has none yet; returns how many were made.

    The settings are defaults: once a queue has a row, its live values (changed through the API, the command or
    the dashboard) win; `reset_queue` puts the settings back. Workers call this at start-up (and `migrate`)."""
    from .models import Queue

    rows = [Queue(name=name, **_columns(values)) for name, values in configured_queues().items()]
    if not rows:
        return 0
    existing = set(Queue.objects.filter(name__in=[r.name for r in rows]).values_list("name", flat=True))
    Queue.objects.bulk_create([r for r in rows if r.name not in existing], ignore_conflicts=True)
    return len(rows) - len(existing)


def get_queue(name: str) -> QueueState:
    """The live settings of a queue (a queue without a row: its settings' defaults, else no limits)."""
    from .models import Queue

    name = check_queue_name(name)
    row = Queue.objects.filter(name=name).first()
    return _state(row) if row else QueueState(name=name, **settings_defaults(name))


def list_queues(names: Iterable[str] = ()) -> list[QueueState]:
    """Every queue with a row or settings, plus `names` (queues known otherwise, e.g. from handlers), by name."""
    from .models import Queue

    states = {name: QueueState(name=name, **values) for name, values in configured_queues().items()}
    states.update({row.name: _state(row) for row in Queue.objects.all()})
    for name in names:
        states.setdefault(name, QueueState(name=name))
    return [states[name] for name in sorted(states)]


def set_paused(name: str, paused: bool, *, actor: Any = None) -> QueueState:
    """Pause or resume a queue on every worker. Waiting jobs stay queued, enqueueing still works, running jobs
    finish. Once the change is committed (at once, or when the caller's transaction commits), no claim starts a
    job of a paused queue."""
    return _change(name, {"paused": paused}, "pause_queue" if paused else "resume_queue", actor)


def set_limits(name: str, *, actor: Any = None, **limits: Any) -> QueueState:
    """Change some of a queue's limits (`UNCHANGED` ones are left, None removes one). When the change is
    committed, every later claim keeps within the new limits; jobs already running are not stopped."""
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise TypeError(f"Unknown queue limit(s): {', '.join(sorted(unknown))}")
    changes = {field: check_field(field, value) for field, value in limits.items() if value is not UNCHANGED}
    return _change(name, changes, "set_queue_limits", actor)


def reset_queue(name: str, *, actor: Any = None) -> QueueState:
    """Put a queue's limits and paused flag back to its JOBSCHEDULER["QUEUES"] entry (else: none, running)."""
    return _change(name, settings_defaults(check_queue_name(name)), "reset_queue", actor)


def _change(name: str, changes: dict[str, Any], action: str, actor: Any) -> QueueState:
    """Apply a change, audited (`actor`: an audit.Actor, a name, or None), and once it is committed wait for the
    claims that may not have seen it."""
    from . import audit
    from .models import AuditAction, Queue

    name = check_queue_name(name)
    columns = _columns(changes)
    if "rate_limit" in changes:  # a new rate starts counting afresh (the buckets' width follows the period)
        columns["rate_window"] = {}
    with transaction.atomic():
        Queue.objects.bulk_create(
            [Queue(name=name, **_columns(settings_defaults(name)))], ignore_conflicts=True
        )
        Queue.objects.filter(name=name).update(**columns, updated_at=dj_timezone.now())
        row = Queue.objects.get(name=name)
        described = {k: str(v) if isinstance(v, RateLimit) else v for k, v in changes.items()}
        audit.record(
            audit.actor_of(actor),
            AuditAction(action),
            tenant=None,
            target=f"queue {name}",
            count=0,
            detail={"queue": name, **described},
        )
    transaction.on_commit(wait_for_claims_in_flight)
    return _state(row)


def wait_for_claims_in_flight() -> None:
    """Return once every claim that began before now has committed (see CONFIG_BARRIER_KEY)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [CONFIG_BARRIER_KEY])


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """QueueState's fields as `jobscheduler_queues` columns (a rate limit is two: starts and period)."""
    columns = dict(values)
    if "rate_limit" in columns:
        rate = columns.pop("rate_limit")
        columns["rate_limit"] = rate.starts if rate else None
        columns["rate_period_seconds"] = rate.per_seconds if rate else None
    return columns


def _state(row: Any) -> QueueState:
    return QueueState(
        name=row.name,
        concurrency=row.concurrency,
        tenant_concurrency=row.tenant_concurrency,
        rate_limit=RateLimit(row.rate_limit, row.rate_period_seconds) if row.rate_limit else None,
        paused=row.paused,
        updated_at=row.updated_at,
    )
