"""The one writer of the monitoring record: `jobs` rows, their status transitions and `job_details` steps.

Both backends record a job's life through this module, so a job looks the same whatever ran it:

    pending -> queued -> processing -> completed | failed | cancelled
                  ^           |
                  +-- retry --+   (a failed attempt that will be retried goes back to queued)

Each transition is SQL that reads its input from a row source named `src`. The Temporal backend feeds it
parameters (`record_*` functions, one statement each); the pgboss engine puts its own fenced queue statement in
front as the `src` CTE (the `*_SQL` fragments), so a queue change and its record are one statement and a stale
attempt, filtered out by the fence, records nothing.

The metadata keys it writes are listed in `record_keys.py`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection as django_connection

from . import libpq
from .queues import DEFAULT_QUEUE
from .states import Outcome, RunnerType, render_sql

# -- creation -------------------------------------------------------------------------------------------------

#: Inserts one `jobs` row per `src` row (tenant, job_id, type, metadata jsonb, user_id). Parameters:
#: %(status)s, %(runner_type)s. `external_id` is the job id for pgboss (the queue row's id).
_INSERT_JOBS = """
INSERT INTO jobs (tenant, job_id, type, metadata, status, created_at, updated_at, user_id, runner_type,
                  external_id)
SELECT src.tenant, src.job_id, src.type, src.metadata, $STATUS, now(), now(), src.user_id,
       %(runner_type)s::varchar, CASE WHEN %(runner_type)s::varchar = $RUNNER_PGBOSS THEN src.job_id::text END
FROM src
"""
INSERT_JOBS_SQL = render_sql(_INSERT_JOBS.replace("$STATUS", "%(status)s::job_status"))

#: As INSERT_JOBS_SQL, each row with its own status (`src.status`): a workflow's first steps are `queued`, the
#: ones waiting for dependencies `pending`.
INSERT_STEPS_SQL = render_sql(_INSERT_JOBS.replace("$STATUS", "src.status::job_status"))


def build_metadata(
    data_json: str,
    *,
    extra: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    priority: int = 0,
    singleton_key: str | None = None,
    schedule_id: uuid.UUID | None = None,
    queue: str = DEFAULT_QUEUE,
    unique_key: str | None = None,
    timeout_ms: int | None = None,
) -> str:
    """The initial `jobs.metadata` JSON text; `data_json` is already validated JSON text, spliced not re-encoded."""
    return (
        '{"data":'
        + data_json
        + _metadata_rest(
            extra, max_attempts, priority, singleton_key, schedule_id, queue, unique_key, timeout_ms
        )
    )


def build_metadata_many(
    data_jsons: Sequence[str],
    *,
    extra: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    priority: int = 0,
    queue: str = DEFAULT_QUEUE,
    timeout_ms: int | None = None,
) -> list[str]:
    """build_metadata for a batch whose jobs differ only in their data: the rest is encoded once, not per job
    (a bulk enqueue's Python time was mostly this encoding)."""
    rest = _metadata_rest(extra, max_attempts, priority, None, None, queue, None, timeout_ms)
    return ['{"data":' + text + rest for text in data_jsons]


def _metadata_rest(
    extra: dict[str, Any] | None,
    max_attempts: int | None,
    priority: int,
    singleton_key: str | None,
    schedule_id: uuid.UUID | None,
    queue: str,
    unique_key: str | None,
    timeout_ms: int | None,
) -> str:
    """The metadata after the data, from its comma to the closing brace."""
    meta: dict[str, Any] = dict(extra or {})
    meta["attempts"] = 0
    meta["queue"] = queue
    if unique_key is not None:
        meta["uniqueKey"] = unique_key
    if max_attempts is not None:
        meta["maxAttempts"] = max_attempts
    if timeout_ms is not None:
        meta["timeoutMs"] = timeout_ms
    if priority:
        meta["priority"] = priority
    if singleton_key is not None:
        meta["singletonKey"] = singleton_key
    if schedule_id is not None:
        meta["scheduleId"] = str(schedule_id)
    return "," + json.dumps(meta, separators=(",", ":"))[1:]


@dataclass(frozen=True, slots=True)
class NewJob:
    tenant: uuid.UUID
    job_id: uuid.UUID
    type: str
    metadata_json: str
    user_id: uuid.UUID


#: `src` of INSERT_JOBS_SQL: many rows as parallel arrays, or one row as plain parameters (a Temporal job is
#: recorded one at a time, and turning five one-element lists into arrays cost more than the statement).
_CREATED_ROWS_SRC = (
    "WITH src AS (SELECT * FROM unnest(%(tenants)s::uuid[], %(ids)s::uuid[], %(types)s::text[], "
    "%(metas)s::jsonb[], %(users)s::uuid[]) AS s(tenant, job_id, type, metadata, user_id))"
)
_CREATED_ROW_SRC = (
    "WITH src AS (SELECT %(tenant)s::uuid AS tenant, %(job_id)s::uuid AS job_id, %(type)s::text AS type, "
    "%(meta)s::jsonb AS metadata, %(user)s::uuid AS user_id)"
)


#: The two writes of a Temporal start on the caller's connection (one row each): straight through libpq
#: (jobscheduler/libpq.py), like the pgboss one-by-one enqueue, since Django's and psycopg's cursor layers cost
#: the caller more CPU than the statements cost the server.
_CREATE_ONE = libpq.Statement.of("jobscheduler_record_created", _CREATED_ROW_SRC + INSERT_JOBS_SQL)
_QUEUED = libpq.Statement.of(
    "jobscheduler_record_queued",
    """UPDATE jobs SET status = CASE WHEN status = 'pending' THEN 'queued'::job_status ELSE status END,
              updated_at = now(), external_id = %(external_id)s::varchar, external_run_id = %(external_run_id)s::varchar
       WHERE tenant = %(tenant)s::uuid AND job_id = %(job_id)s::uuid
         AND (status = 'pending' OR external_run_id IS NULL)""",
)


def record_created(jobs: Sequence[NewJob], *, status: str, runner_type: RunnerType, cursor=None) -> None:
    """Insert `jobs` rows (Temporal: `pending` before the workflow starts)."""
    params: dict[str, Any] = {"status": status, "runner_type": str(runner_type)}
    if len(jobs) == 1:
        (job,) = jobs
        params |= {
            "tenant": job.tenant,
            "job_id": job.job_id,
            "type": job.type,
            "meta": job.metadata_json,
            "user": job.user_id,
        }
        _execute_one(_CREATE_ONE, params, cursor)
        return
    params |= {
        "tenants": [j.tenant for j in jobs],
        "ids": [j.job_id for j in jobs],
        "types": [j.type for j in jobs],
        "metas": [j.metadata_json for j in jobs],
        "users": [j.user_id for j in jobs],
    }
    _execute(_CREATED_ROWS_SRC + INSERT_JOBS_SQL, params, cursor)


def record_queued(
    tenant: uuid.UUID, job_id: uuid.UUID, *, external_id: str | None, external_run_id: str | None, cursor=None
) -> None:
    """The backend accepted the job (Temporal: the workflow started): a `pending` row becomes `queued` with the
    backend's ids. A row whose attempt already began (a Temporal worker can be quicker than the caller that
    started the workflow) or that was cancelled meanwhile keeps its status but still gets the ids it lacks."""
    params = {
        "tenant": tenant,
        "job_id": job_id,
        "external_id": external_id,
        "external_run_id": external_run_id,
    }
    _execute_one(_QUEUED, params, cursor)


def _execute_one(statement: libpq.Statement, params: dict[str, Any], cursor) -> None:
    """A one-row write of a Temporal start: on the given cursor, else straight through libpq on Django's
    connection (which falls back to Django's cursor itself where going around it would lose something)."""
    if cursor is None:
        libpq.execute(statement, params)
    else:
        _execute(statement.text, params, cursor)


def record_withdrawn(tenant: uuid.UUID, job_id: uuid.UUID, *, runner_type: RunnerType, cursor=None) -> int:
    """Remove a row that is still `pending` (its backend never accepted the job) so another backend can record
    the job under the same id; 0 when it is no longer pending (cancelled meanwhile, say)."""
    return _execute(
        """DELETE FROM jobs WHERE tenant = %(tenant)s AND job_id = %(job_id)s AND status = 'pending'
               AND runner_type = %(runner_type)s
               AND NOT EXISTS (SELECT 1 FROM job_details d WHERE d.tenant = %(tenant)s AND d.job_id = %(job_id)s)""",
        {"tenant": tenant, "job_id": job_id, "runner_type": str(runner_type)},
        cursor,
    )


# -- an attempt starts ------------------------------------------------------------------------------------------

#: `src` rows: (tenant, job_id, attempt). Parameter: %(worker_id)s.
_STARTED = """,
started AS (
    UPDATE jobs j
    SET status = 'processing', updated_at = now(),
        metadata = coalesce(j.metadata, '{}'::jsonb)
            || jsonb_build_object('attempts', src.attempt, 'lastStartedAt', now(), 'workerId', %(worker_id)s::text)
            || CASE WHEN j.metadata ? 'startedAt' THEN '{}'::jsonb ELSE jsonb_build_object('startedAt', now()) END
    FROM src
    WHERE j.tenant = src.tenant AND j.job_id = src.job_id$ONLY_WAITING
    RETURNING j.tenant, j.job_id, src.attempt, j.metadata -> 'data' AS data,
              j.metadata ->> 'traceparent' AS traceparent, j.metadata ->> 'tracestate' AS tracestate
),
started_step AS (
    INSERT INTO job_details (tenant, detail_id, job_id, step_name, status, result, processed_at, retry_count,
                             metadata)
    SELECT tenant, jobscheduler_uuid7(), job_id, 'execution_started', 'processing',
           jsonb_build_object('attempt', attempt, 'workerId', %(worker_id)s::text), now(), attempt - 1,
           jsonb_build_object('attempt', attempt, 'workerId', %(worker_id)s::text)
    FROM started
)
"""
STARTED_SQL = _STARTED.replace("$ONLY_WAITING", "")
#: STARTED_SQL for a job waiting for the attempt (`pending` or `queued`) only: a job already running, final or
#: gone is left alone. The condition is re-checked on the newest row once the UPDATE holds its lock, so a
#: concurrent write cannot slip in between.
STARTED_IF_WAITING_SQL = _STARTED.replace("$ONLY_WAITING", "\n      AND j.status IN ('pending', 'queued')")

#: One `src` row for the STARTED statements: (tenant, job_id, attempt).
_ONE_ATTEMPT_SRC = (
    "WITH src AS (SELECT %(tenant)s::uuid AS tenant, %(job_id)s::uuid AS job_id, %(attempt)s::int AS attempt)"
)


def record_started(
    tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, *, worker_id: str, cursor=None
) -> None:
    sql = _ONE_ATTEMPT_SRC + STARTED_SQL + "SELECT count(*) FROM started"
    _execute(sql, {"tenant": tenant, "job_id": job_id, "attempt": attempt, "worker_id": worker_id}, cursor)


def record_started_if_waiting(
    tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, *, worker_id: str
) -> dict[str, Any] | None:
    """Start attempt `attempt` of a job that waits for it (`pending` or `queued`), in one statement: the job's
    payload (`data`) and trace context (`traceparent`, `tracestate`), or None when the job was not waiting
    (already running, final or gone), which the caller then looks at under a lock. The common case of a Temporal
    attempt's start is this one round trip, with no lock taken first."""
    sql = _ONE_ATTEMPT_SRC + STARTED_IF_WAITING_SQL + "SELECT data, traceparent, tracestate FROM started"
    with django_connection.cursor() as cur:
        cur.execute(sql, {"tenant": tenant, "job_id": job_id, "attempt": attempt, "worker_id": worker_id})
        row = cur.fetchone()
    if row is None:
        return None
    data, traceparent, tracestate = row
    data = json.loads(data) if isinstance(data, str | bytes) else data
    return {
        "data": data if isinstance(data, dict) else {},
        **({"traceparent": traceparent} if traceparent else {}),
        **({"tracestate": tracestate} if tracestate else {}),
    }


# -- an attempt ends --------------------------------------------------------------------------------------------

#: When the current attempt of the `jobs` row `j` started (`lastStartedAt`, written by STARTED_SQL as ISO text);
#: NULL when the key holds anything else, so a row edited by hand cannot fail a whole batch of outcomes.
ATTEMPT_STARTED_AT = (
    r"CASE WHEN j.metadata ->> 'lastStartedAt' ~ '\A\d{4}-\d\d-\d\dT[0-9:.]+([+-][0-9:]+|Z)\Z' "
    "THEN (j.metadata ->> 'lastStartedAt')::timestamptz END"
)


def _ms_since(started_at: str, until: str = "clock_timestamp()") -> str:
    """SQL for the whole milliseconds from `started_at` to `until` (default this statement's clock: steps use
    clock_timestamp(); a step recorded after the fact gives the time it happened)."""
    return f"round(extract(epoch FROM {until} - {started_at}) * 1000)::bigint"


#: `src` rows: (tenant, job_id, attempt, outcome, result jsonb, error text, error_type text, tb text,
#: next_at timestamptz, at timestamptz); `outcome` is an `Outcome` value. `at` is when the attempt ended, for an
#: end recorded after the fact (NULL: now). A cancel request already in the record (`cancelReason`,
#: `cancelledBy`, see `record_cancel_requested`) is kept by a cancelled end and dropped by a completed or failed
#: one (the request came too late).
_FINISHED = (
    """,
finished AS (
    UPDATE jobs j
    SET status = (CASE src.outcome WHEN $OUTCOME_COMPLETED THEN 'completed' WHEN $OUTCOME_FAILED THEN 'failed'
                                   WHEN $OUTCOME_CANCELLED THEN 'cancelled' ELSE 'queued' END)::job_status,
        updated_at = now(),
        metadata = (coalesce(j.metadata, '{}'::jsonb)
                    - CASE WHEN src.outcome IN ($OUTCOME_COMPLETED, $OUTCOME_FAILED)
                           THEN ARRAY['cancelReason', 'cancelledBy'] ELSE ARRAY[]::text[] END)
            || CASE src.outcome
                 WHEN $OUTCOME_COMPLETED THEN jsonb_build_object('completedAt', coalesce(src.at, now()),
                                                                 'progress', 100)
                 WHEN $OUTCOME_FAILED THEN jsonb_build_object('completedAt', coalesce(src.at, now()),
                                                              'error', src.error, 'errorType', src.error_type)
                 WHEN $OUTCOME_CANCELLED THEN jsonb_build_object('completedAt', coalesce(src.at, now()))
                     || CASE WHEN src.error IS NULL OR j.metadata ? 'cancelReason' THEN '{}'::jsonb
                             ELSE jsonb_build_object('cancelReason', src.error) END
                 WHEN $OUTCOME_RETRY THEN jsonb_build_object('error', src.error, 'errorType', src.error_type,
                                                      'nextAttemptAt', src.next_at)
                 ELSE jsonb_build_object('attempts', greatest(src.attempt - 1, 0))
               END
    FROM src
    WHERE j.tenant = src.tenant AND j.job_id = src.job_id$ONLY_RUNNING
    RETURNING j.tenant, j.job_id, src.attempt, src.outcome, src.result, src.error, src.error_type, src.tb,
              src.next_at, src.at, j.metadata ->> 'cancelReason' AS cancel_reason,
              j.metadata -> 'cancelledBy' AS cancelled_by, j.metadata ->> 'workerId' AS worker_id, """
    + ATTEMPT_STARTED_AT
    + """ AS attempt_started_at
),
finished_steps AS (
    INSERT INTO job_details (tenant, detail_id, job_id, step_name, status, result, processed_at, retry_count,
                             metadata)
    SELECT f.tenant, jobscheduler_uuid7(), f.job_id, step.name, step.status::job_status, step.result,
           coalesce(f.at + (step.ord - 1) * interval '1 microsecond', clock_timestamp()), f.attempt - 1,
           jsonb_strip_nulls(jsonb_build_object(
               'attempt', nullif(f.attempt, 0), 'workerId', f.worker_id,
               'durationMs', CASE WHEN f.attempt > 0 THEN """
    + _ms_since("f.attempt_started_at", "coalesce(f.at, clock_timestamp())")
    + """ END))
    FROM finished f
    CROSS JOIN LATERAL (VALUES
        (1, 'execution_completed', 'completed', jsonb_build_object('attempt', f.attempt, 'result', f.result)),
        (2, 'execution_failed', 'failed', jsonb_build_object('attempt', f.attempt, 'error', f.error,
                                                             'errorType', f.error_type, 'traceback', f.tb)),
        (3, 'execution_retry_scheduled', 'queued', jsonb_build_object('attempt', f.attempt,
                                                                      'nextAttemptAt', f.next_at)),
        (4, 'execution_cancelled', 'cancelled', jsonb_build_object('attempt', f.attempt,
                                                                   'reason', f.cancel_reason)
            || CASE WHEN f.cancelled_by IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('cancelledBy', f.cancelled_by) END),
        (5, 'execution_released', 'queued', jsonb_build_object('attempt', f.attempt, 'reason', f.error))
    ) AS step(ord, name, status, result)
    WHERE (f.outcome = $OUTCOME_COMPLETED AND step.ord = 1)
       OR (f.outcome IN ($OUTCOME_FAILED, $OUTCOME_RETRY) AND step.ord = 2)
       OR (f.outcome = $OUTCOME_RETRY AND step.ord = 3)
       OR (f.outcome = $OUTCOME_CANCELLED AND step.ord = 4)
       OR (f.outcome = $OUTCOME_RELEASED AND step.ord = 5)
    ORDER BY f.job_id, step.ord
)
"""
)
FINISHED_SQL = render_sql(_FINISHED.replace("$ONLY_RUNNING", ""))
#: FINISHED_SQL for ends that may come late or twice (Temporal delivers at least once): an end is only taken
#: while its attempt is the one running (`processing`, `attempts` = its number), checked on the newest row
#: under the UPDATE's lock.
FINISHED_IF_RUNNING_SQL = render_sql(
    _FINISHED.replace(
        "$ONLY_RUNNING",
        "\n      AND j.status = 'processing' AND j.metadata ->> 'attempts' = src.attempt::text",
    )
)

#: A row source for FINISHED_SQL from parallel arrays (see `outcome_columns`).
FINISHED_SRC_FROM_ARRAYS = """
SELECT * FROM unnest(%(tenants)s::uuid[], %(ids)s::uuid[], %(attempts)s::int[], %(outcomes)s::text[],
                     %(results)s::jsonb[], %(errors)s::text[], %(error_types)s::text[], %(tbs)s::text[],
                     %(next_ats)s::timestamptz[], %(ats)s::timestamptz[])
    AS s(tenant, job_id, attempt, outcome, result, error, error_type, tb, next_at, at)
"""


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one attempt ended, as the record needs it."""

    tenant: uuid.UUID
    job_id: uuid.UUID
    attempt: int
    outcome: Outcome
    result_json: str | None = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    next_at: datetime | None = None
    #: For the pgboss worker's retries: the backoff, turned into `next_at` by the database clock.
    retry_delay_ms: float | None = None
    #: When the attempt ended, for an end recorded after the fact (Temporal, once the database is back).
    at: datetime | None = None


def outcome_columns(outcomes: Sequence[AttemptOutcome]) -> dict[str, list]:
    """The parallel arrays of a `src` for FINISHED_SQL, except the next attempt's time, which each backend
    knows its own way: Temporal passes `next_ats` (see `record_finished`); the queue's FINISH statement passes
    the backoff and lets the database clock turn it into `next_at`. Likewise `at` (Temporal's late ends)."""
    return {
        "tenants": [o.tenant for o in outcomes],
        "ids": [o.job_id for o in outcomes],
        "attempts": [o.attempt for o in outcomes],
        "outcomes": [str(o.outcome) for o in outcomes],
        "results": [o.result_json for o in outcomes],
        "errors": [o.error for o in outcomes],
        "error_types": [o.error_type for o in outcomes],
        "tbs": [o.traceback for o in outcomes],
    }


def record_finished(outcomes: Sequence[AttemptOutcome], *, cursor=None) -> int:
    """Record how attempts ended (Temporal activities). Returns the number of jobs rows updated."""
    if not outcomes:
        return 0
    return _finish(FINISHED_SQL, outcomes, cursor)


def record_finished_if_running(outcome: AttemptOutcome) -> bool:
    """Record how an attempt ended, only while it is the one running (see FINISHED_IF_RUNNING_SQL), in one
    statement with no lock taken first; whether it was recorded (False: superseded, final or gone)."""
    return _finish(FINISHED_IF_RUNNING_SQL, [outcome], None) > 0


def _finish(finished_sql: str, outcomes: Sequence[AttemptOutcome], cursor) -> int:
    sql = "WITH src AS (" + FINISHED_SRC_FROM_ARRAYS + ")" + finished_sql + "SELECT count(*) FROM finished"
    params = outcome_columns(outcomes) | {
        "next_ats": [o.next_at for o in outcomes],
        "ats": [o.at for o in outcomes],
    }
    return _execute(sql, params, cursor)


#: Workflow steps whose last dependency completed (`ready_steps` rows: tenant, job_id) go from `pending`
#: (waiting) to `queued`.
RELEASED_SQL = """,
released_jobs AS (
    UPDATE jobs j SET status = 'queued', updated_at = now()
    FROM ready_steps r
    WHERE j.tenant = r.tenant AND j.job_id = r.job_id AND j.status = 'pending'
    RETURNING j.job_id
)
"""

#: Jobs cancelled before any attempt began (`unstarted` rows: tenant, job_id, reason, cause uuid or NULL, the
#: dependency that caused it, cancelled_by text or NULL, who asked). Only a record not yet final changes, so a
#: job is recorded cancelled once.
CANCELLED_UNSTARTED_SQL = """,
cancelled_jobs AS (
    UPDATE jobs j SET status = 'cancelled', updated_at = now(),
        metadata = coalesce(j.metadata, '{}'::jsonb) || jsonb_build_object('completedAt', now())
            || CASE WHEN u.reason IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('cancelReason', u.reason) END
            || CASE WHEN u.cause IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('cancelledByJob', u.cause) END
            || CASE WHEN u.cancelled_by IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('cancelledBy', u.cancelled_by) END
    FROM unstarted u
    WHERE j.tenant = u.tenant AND j.job_id = u.job_id AND j.status NOT IN ('completed', 'failed', 'cancelled')
    RETURNING j.tenant, j.job_id, u.reason, u.cancelled_by, coalesce((j.metadata ->> 'attempts')::int, 0) AS attempts
),
cancelled_steps AS (
    INSERT INTO job_details (tenant, detail_id, job_id, step_name, status, result, processed_at, retry_count,
                             metadata)
    SELECT tenant, jobscheduler_uuid7(), job_id, 'execution_cancelled', 'cancelled',
           jsonb_build_object('reason', reason)
               || CASE WHEN cancelled_by IS NULL THEN '{}'::jsonb
                       ELSE jsonb_build_object('cancelledBy', cancelled_by) END,
           now(), greatest(attempts - 1, 0), '{}'::jsonb
    FROM cancelled_jobs
)
"""


def record_cancelled_unstarted(
    tenant: uuid.UUID,
    job_id: uuid.UUID,
    *,
    reason: str | None,
    cause: uuid.UUID | str | None = None,
    cancelled_by: str | None = None,
    cursor=None,
) -> int:
    """A job cancelled before any attempt began: only a live, not-yet-final record may be cancelled. `cause`:
    the workflow dependency whose failure cancelled it; `cancelled_by`: who asked."""
    return _execute(
        "WITH unstarted AS (SELECT %(tenant)s::uuid AS tenant, %(job_id)s::uuid AS job_id,"
        " %(reason)s::text AS reason, %(cause)s::uuid AS cause, %(cancelled_by)s::text AS cancelled_by)"
        + CANCELLED_UNSTARTED_SQL
        + "SELECT count(*) FROM cancelled_jobs",
        {"tenant": tenant, "job_id": job_id, "reason": reason, "cause": cause, "cancelled_by": cancelled_by},
        cursor,
    )


def record_cancel_requested(
    tenant: uuid.UUID, job_id: uuid.UUID, *, reason: str, cancelled_by: str | None, cursor=None
) -> int:
    """A cancel asked of a running attempt: who asked and why, kept by the cancelled end that follows (and
    dropped if the attempt completes or fails first). Only a live record takes it; returns the rows updated."""
    return _execute(
        """UPDATE jobs SET updated_at = now(),
               metadata = (coalesce(metadata, '{}'::jsonb) - 'cancelledBy')
                   || jsonb_strip_nulls(jsonb_build_object('cancelReason', %(reason)s::text,
                                                           'cancelledBy', %(cancelled_by)s::text))
           WHERE tenant = %(tenant)s AND job_id = %(job_id)s
             AND status NOT IN ('completed', 'failed', 'cancelled')""",
        {"tenant": tenant, "job_id": job_id, "reason": reason, "cancelled_by": cancelled_by},
        cursor,
    )


def record_resumed(
    tenant: uuid.UUID,
    job_ids: Sequence[uuid.UUID],
    *,
    retried: uuid.UUID,
    retry: uuid.UUID,
    reason: str,
    cursor=None,
) -> int:
    """Workflow steps cancelled because of a dependency wait again (`pending`) after that dependency was
    retried: their cancellation is lifted, `dependsOn` names the retry instead of the retried job, and an
    `execution_resumed` step says why."""
    return _execute(
        """WITH r AS (
               UPDATE jobs SET status = 'pending', updated_at = now(),
                   metadata = (metadata - 'completedAt' - 'cancelReason' - 'cancelledByJob')
                       || jsonb_build_object('dependsOn', coalesce((
                              SELECT jsonb_agg(CASE WHEN d = %(retried)s::text THEN %(retry)s::text ELSE d END)
                              FROM jsonb_array_elements_text(metadata -> 'dependsOn') AS d), '[]'::jsonb))
               WHERE tenant = %(tenant)s AND job_id = ANY(%(ids)s::uuid[]) AND status = 'cancelled'
               RETURNING tenant, job_id
           ), s AS (
               INSERT INTO job_details (tenant, detail_id, job_id, step_name, status, result, processed_at,
                                        retry_count, metadata)
               SELECT tenant, jobscheduler_uuid7(), job_id, 'execution_resumed', 'pending',
                      jsonb_build_object('reason', %(reason)s::text, 'retryOf', %(retried)s::text,
                                         'retry', %(retry)s::text), now(), 0, '{}'::jsonb
               FROM r
           )
           SELECT count(*) FROM r""",
        {"tenant": tenant, "ids": list(job_ids), "retried": retried, "retry": retry, "reason": reason},
        cursor,
    )


#: `src` rows: (tenant, job_id, data jsonb). A waiting job's payload replaced by a later call (a debounced job):
#: `debounced` counts the replacements.
DATA_REPLACED_SQL = """,
replaced AS (
    UPDATE jobs j SET updated_at = now(),
        metadata = coalesce(j.metadata, '{}'::jsonb)
            || jsonb_build_object('data', src.data,
                                  'debounced', coalesce((j.metadata ->> 'debounced')::int, 0) + 1)
    FROM src
    WHERE j.tenant = src.tenant AND j.job_id = src.job_id
)
"""


# -- while an attempt runs --------------------------------------------------------------------------------------


def record_progress(
    tenant: uuid.UUID, job_id: uuid.UUID, progress: float | None, message: str | None, *, cursor=None
) -> None:
    """The job's progress (None: unchanged) and message; a job already final keeps its last (a late update
    changes nothing)."""
    _execute(
        """UPDATE jobs SET updated_at = now(),
               metadata = coalesce(metadata, '{}'::jsonb)
                   || jsonb_build_object('progressMessage', %(message)s::text)
                   || CASE WHEN %(progress)s::float8 IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('progress', %(progress)s::float8) END
           WHERE tenant = %(tenant)s AND job_id = %(job_id)s
             AND status NOT IN ('completed', 'failed', 'cancelled')""",
        {"tenant": tenant, "job_id": job_id, "progress": progress, "message": message},
        cursor,
    )


def record_step(
    tenant: uuid.UUID,
    job_id: uuid.UUID,
    name: str,
    status: str,
    result_json: str | None,
    *,
    attempt: int,
    detail_id: uuid.UUID | None = None,
    at: datetime | None = None,
    cursor=None,
) -> None:
    """A handler's own step (`current_job().step(...)`), with the attempt's worker and time so far. With a
    `detail_id` chosen by the caller the write is idempotent (a retried write of the same step adds nothing);
    `at` is when the step happened, for a step recorded after the fact."""
    _execute(
        """INSERT INTO job_details (tenant, detail_id, job_id, step_name, status, result, processed_at, retry_count,
                                   metadata)
           SELECT %(tenant)s, coalesce(%(detail_id)s::uuid, jobscheduler_uuid7()), %(job_id)s, %(name)s,
                  %(status)s::job_status, %(result)s::jsonb, coalesce(%(at)s::timestamptz, clock_timestamp()),
                  %(retry)s,
                  jsonb_strip_nulls(jsonb_build_object(
                      'attempt', %(attempt)s::int, 'workerId', j.metadata ->> 'workerId',
                      'durationMs', """
        + _ms_since(ATTEMPT_STARTED_AT, "coalesce(%(at)s::timestamptz, clock_timestamp())")
        + """))
           FROM (SELECT NULL) AS one LEFT JOIN jobs j ON j.tenant = %(tenant)s AND j.job_id = %(job_id)s
           ON CONFLICT (tenant, detail_id) DO NOTHING""",
        {
            "tenant": tenant,
            "job_id": job_id,
            "name": name,
            "status": status,
            "result": result_json,
            "retry": max(attempt - 1, 0),
            "attempt": attempt,
            "detail_id": detail_id,
            "at": at,
        },
        cursor,
    )


def record_lag(tenant: uuid.UUID, job_id: uuid.UUID, seconds: float, *, cursor=None) -> None:
    """How late the record caught up with the job (Temporal, after the database was unreachable): the largest
    lag seen, in seconds."""
    _execute(
        """UPDATE jobs SET metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('recordLagSeconds',
                   greatest(coalesce((metadata ->> 'recordLagSeconds')::float8, 0), round(%(seconds)s::numeric, 3)))
           WHERE tenant = %(tenant)s AND job_id = %(job_id)s""",
        {"tenant": tenant, "job_id": job_id, "seconds": seconds},
        cursor,
    )


def _execute(sql: str, params: dict[str, Any], cursor) -> int:
    """Run on the given cursor (a worker's own connection) or on Django's connection (joins its transaction)."""
    if cursor is not None:
        cursor.execute(sql, params)
        row = cursor.fetchone() if cursor.description else None
        return int(row[0]) if row else cursor.rowcount
    with django_connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone() if cur.description else None
        return int(row[0]) if row else cur.rowcount
