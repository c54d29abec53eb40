"""Every statement of the pgboss engine, by name, in the order of a job's life.

The queue table (`jobscheduler_queue`) holds live jobs only. Each statement that changes a job's queue row
also records the change in `jobs` / `job_details`, in the same statement, through the transition SQL of
`tracking.py` (`STARTED_SQL`, `FINISHED_SQL`, `INSERT_JOBS_SQL`, which read a CTE named `src`). Every
statement that ends an attempt is fenced on (job_id, lease_token, attempt): a stale attempt matches no row, so
it changes and records nothing.

Statements only the worker runs (on its own psycopg connection) take their arrays in binary (`%(name)b`): no
text escaping of hundreds of elements per batch.
"""

from __future__ import annotations

from ..states import render_sql
from ..tracking import FINISHED_SQL, INSERT_JOBS_SQL, STARTED_SQL

CHANNEL_JOBS = "jobscheduler_jobs"
CHANNEL_CANCEL = "jobscheduler_cancel"

# -- enqueue (on the caller's Django connection: joins its transaction) ------------------------------------------

#: One statement for 1..n jobs of one name: queue rows, `jobs` rows (status queued) and a NOTIFY that is only
#: delivered when the caller's transaction commits. A singleton conflict inserts nothing (see FIND_SINGLETON).
#: The jobs arrive as one JSON array of {tenant, id, meta}: one parameter, parsed by the server, whatever the
#: batch size.
ENQUEUE = (
    """
WITH input AS (
    SELECT (item ->> 'tenant')::uuid AS tenant, (item ->> 'id')::uuid AS job_id, %(type)s::varchar AS type,
           item -> 'meta' AS metadata, %(user_id)s::uuid AS user_id
    FROM jsonb_array_elements(%(items)s::jsonb) AS item
),
queued AS (
    INSERT INTO jobscheduler_queue (job_id, tenant, name, priority, run_at, attempt, max_attempts, singleton_key,
                                    cancel_requested, created_at)
    SELECT job_id, tenant, type, %(priority)s, coalesce(%(run_at)s::timestamptz, now()), 0, %(max_attempts)s,
           %(singleton_key)s, false, now()
    FROM input
    ON CONFLICT (tenant, singleton_key) WHERE singleton_key IS NOT NULL DO NOTHING
    RETURNING job_id
),
src AS (SELECT input.* FROM input JOIN queued USING (job_id)),
created AS ("""
    + INSERT_JOBS_SQL
    + """    RETURNING job_id
)
SELECT array_agg(job_id), CASE WHEN count(*) > 0 THEN pg_notify('"""
    + CHANNEL_JOBS
    + """', '') END FROM created
"""
)

FIND_SINGLETON = """
SELECT job_id FROM jobscheduler_queue WHERE tenant = %(tenant)s AND singleton_key = %(singleton_key)s
"""

# -- claim (on the worker's connection) ---------------------------------------------------------------------------

#: Claims up to %(limit)s ready jobs (optionally only %(names)s), leases them to %(worker_id)s and records the
#: start of their attempt. Returns what the worker needs to run each one, the payload included as JSON text:
#: decoding it is each job's own business (in its thread), so a hostile payload fails that job, not the worker.
CLAIM = (
    """
WITH src AS (
    UPDATE jobscheduler_queue q
    SET attempt = q.attempt + 1, lease_token = gen_random_uuid(), worker_id = %(worker_id)s,
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    FROM (
        SELECT job_id FROM jobscheduler_queue
        WHERE lease_token IS NULL AND run_at <= now()
          AND (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
        ORDER BY priority DESC, run_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) ready
    WHERE q.job_id = ready.job_id
    RETURNING q.tenant, q.job_id, q.attempt, q.name, q.max_attempts, q.lease_token
)"""
    + STARTED_SQL
    + """
SELECT src.job_id, src.tenant, src.name, src.attempt, src.max_attempts, src.lease_token, started.data::text
FROM src JOIN started USING (job_id)
"""
)

# -- while running ------------------------------------------------------------------------------------------------

#: Extends the leases this worker still holds; returns those rows with their cancel flag. A job missing from
#: the result is no longer this worker's (rescued elsewhere): its attempt is stale.
HEARTBEAT = """
UPDATE jobscheduler_queue q
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(%(ids)b::uuid[], %(tokens)b::uuid[]) AS h(job_id, token)
WHERE q.job_id = h.job_id AND q.lease_token = h.token
RETURNING q.job_id, q.cancel_requested
"""

REGISTER_WORKER = render_sql(
    """
INSERT INTO jobscheduler_workers (id, backend, host, pid, concurrency, job_names, started_at, heartbeat_at,
                                  running_jobs)
VALUES (%(id)s, $RUNNER_PGBOSS, %(host)s, %(pid)s, %(concurrency)s, %(job_names)s::jsonb, now(), now(), '[]'::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
"""
)

WORKER_HEARTBEAT = """
UPDATE jobscheduler_workers SET heartbeat_at = now(), running_jobs = %(running)s::jsonb WHERE id = %(id)s
"""

UNREGISTER_WORKER = "DELETE FROM jobscheduler_workers WHERE id = %(id)s"

#: Job names with ready jobs (queued, due, not leased) that no live pgboss worker serves: a worker lists the
#: names it serves in `job_names` and is live while its heartbeat is younger than %(expiry_seconds)s. Only the
#: first %(scan_limit)s ready jobs in claim order are read: jobs nobody claims collect at the head of that
#: order, so they are found there however long the queue is, and the read stays bounded.
UNSERVED = render_sql(
    """
WITH served AS (
    SELECT DISTINCT jsonb_array_elements_text(job_names) AS name FROM jobscheduler_workers
    WHERE backend = $RUNNER_PGBOSS AND heartbeat_at > now() - make_interval(secs => %(expiry_seconds)s)
),
ready AS (
    SELECT name FROM jobscheduler_queue
    WHERE lease_token IS NULL AND run_at <= now()
    ORDER BY priority DESC, run_at
    LIMIT %(scan_limit)s
)
SELECT name, count(*) FROM ready WHERE name NOT IN (SELECT name FROM served) GROUP BY name ORDER BY name
"""
)

# -- an attempt ends ----------------------------------------------------------------------------------------------

#: Buffered outcomes of many attempts in one statement. Final outcomes delete the queue row; retry puts it back
#: with its next run time (now() + the backoff: the database clock, not the worker's); released (shutdown) puts it back without using up the attempt. Fenced on
#: (job_id, lease_token, attempt); returns the job ids that were recorded (the rest were stale).
FINISH = render_sql(
    """
WITH input AS (
    SELECT s.*, now() + make_interval(secs => s.delay_ms / 1000.0) AS next_at
    FROM unnest(%(tenants)b::uuid[], %(ids)b::uuid[], %(attempts)b::int[], %(outcomes)b::text[],
                %(results)b::jsonb[], %(errors)b::text[], %(error_types)b::text[], %(tbs)b::text[],
                %(delays)b::float8[], %(tokens)b::uuid[])
        AS s(tenant, job_id, attempt, outcome, result, error, error_type, tb, delay_ms, token)
),
ended AS (
    DELETE FROM jobscheduler_queue q USING input i
    WHERE q.job_id = i.job_id AND q.lease_token = i.token AND q.attempt = i.attempt
      AND i.outcome IN ($OUTCOME_COMPLETED, $OUTCOME_FAILED, $OUTCOME_CANCELLED)
    RETURNING q.job_id
),
requeued AS (
    UPDATE jobscheduler_queue q
    SET lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, run_at = coalesce(i.next_at, now()),
        attempt = CASE WHEN i.outcome = $OUTCOME_RELEASED THEN q.attempt - 1 ELSE q.attempt END
    FROM input i
    WHERE q.job_id = i.job_id AND q.lease_token = i.token AND q.attempt = i.attempt
      AND i.outcome IN ($OUTCOME_RETRY, $OUTCOME_RELEASED)
    RETURNING q.job_id
),
src AS (
    SELECT i.tenant, i.job_id, i.attempt, i.outcome, i.result, i.error, i.error_type, i.tb, i.next_at,
           NULL::timestamptz AS at
    FROM input i WHERE i.job_id IN (SELECT job_id FROM ended UNION ALL SELECT job_id FROM requeued)
)"""
    + FINISHED_SQL
    + """
SELECT f.job_id, (SELECT pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM requeued LIMIT 1) FROM finished f
"""
)

# -- cancel (on the caller's Django connection) --------------------------------------------------------------------

#: A queued job is removed from the queue: it never runs. Returns its id when it was queued.
CANCEL_QUEUED = """
DELETE FROM jobscheduler_queue WHERE tenant = %(tenant)s AND job_id = %(job_id)s AND lease_token IS NULL
RETURNING job_id
"""

#: A running job is flagged; its worker hears the NOTIFY (or sees the flag at its next heartbeat), the handler
#: sees `current_job().is_cancelled`, and the attempt ends `cancelled`.
CANCEL_RUNNING = (
    """
UPDATE jobscheduler_queue SET cancel_requested = true
WHERE tenant = %(tenant)s AND job_id = %(job_id)s AND lease_token IS NOT NULL
RETURNING job_id, pg_notify('"""
    + CHANNEL_CANCEL
    + """', job_id::text)
"""
)

# -- maintenance (any worker; an advisory lock only saves duplicate work) ------------------------------------------

MAINTENANCE_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('jobscheduler_maintenance'))"

#: Puts back jobs whose lease expired (their worker died or stalled). Each rescue ends the lost attempt: it is
#: recorded as a failed attempt, retried now while attempts remain, failed when none remain, cancelled when a
#: cancel was requested.
RESCUE = render_sql(
    """
WITH expired AS (
    SELECT job_id FROM jobscheduler_queue
    WHERE lease_token IS NOT NULL AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
requeued AS (
    UPDATE jobscheduler_queue q
    SET lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, run_at = now()
    FROM expired e
    WHERE q.job_id = e.job_id AND q.attempt < q.max_attempts AND NOT q.cancel_requested
    RETURNING q.tenant, q.job_id, q.attempt, $OUTCOME_RETRY::text AS outcome
),
ended AS (
    DELETE FROM jobscheduler_queue q USING expired e
    WHERE q.job_id = e.job_id AND (q.attempt >= q.max_attempts OR q.cancel_requested)
    RETURNING q.tenant, q.job_id, q.attempt,
              CASE WHEN q.cancel_requested THEN $OUTCOME_CANCELLED ELSE $OUTCOME_FAILED END AS outcome
),
src AS (
    SELECT tenant, job_id, attempt, outcome, NULL::jsonb AS result,
           'Worker lost: the lease expired without a heartbeat' AS error, 'LeaseExpired' AS error_type,
           NULL::text AS tb, CASE WHEN outcome = $OUTCOME_RETRY THEN now() END AS next_at,
           NULL::timestamptz AS at
    FROM (SELECT * FROM requeued UNION ALL SELECT * FROM ended) lost
)"""
    + FINISHED_SQL
    + """
SELECT f.job_id, f.outcome, (SELECT pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM requeued LIMIT 1) FROM finished f
"""
)

EXPIRE_WORKERS = """
DELETE FROM jobscheduler_workers
WHERE heartbeat_at < now() - make_interval(secs => %(expiry_seconds)s)
"""

#: Finished history older than the retention, in bounded batches (details first: the composite FK).
PRUNE_HISTORY = """
WITH old AS (
    SELECT tenant, job_id FROM jobs
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND coalesce(updated_at, created_at) < now() - make_interval(days => %(days)s)
    LIMIT %(limit)s
),
details AS (
    DELETE FROM job_details d USING old WHERE d.tenant = old.tenant AND d.job_id = old.job_id
),
runs AS (
    DELETE FROM jobscheduler_schedule_runs r USING old WHERE r.job_id = old.job_id
)
DELETE FROM jobs j USING old WHERE j.tenant = old.tenant AND j.job_id = old.job_id
"""

# -- cron -----------------------------------------------------------------------------------------------------------

#: pgboss schedules whose next tick is due, locked so concurrent schedulers split them (correctness comes from
#: the unique (schedule, tick) of FIRE_TICK, not from this lock).
DUE_SCHEDULES = render_sql(
    """
SELECT id, tenant, key, job_name, data, metadata, cron, interval_seconds, timezone, user_id, next_run_at, now()
FROM jobscheduler_schedules
WHERE runner_type = $RUNNER_PGBOSS AND NOT paused AND next_run_at <= now()
ORDER BY next_run_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
)

#: Claims one tick of one schedule; returns a row only for the first scheduler to claim it.
FIRE_TICK = """
INSERT INTO jobscheduler_schedule_runs (schedule_id, tick, job_id, created_at)
VALUES (%(schedule_id)s, %(tick)s, %(job_id)s, now())
ON CONFLICT (schedule_id, tick) DO NOTHING
RETURNING id
"""

ADVANCE_SCHEDULE = """
UPDATE jobscheduler_schedules
SET next_run_at = %(next_run_at)s, last_run_at = %(tick)s, last_job_id = coalesce(%(job_id)s, last_job_id),
    updated_at = now()
WHERE id = %(schedule_id)s
"""

PAUSE_BROKEN_SCHEDULE = """
UPDATE jobscheduler_schedules SET paused = true, updated_at = now() WHERE id = %(schedule_id)s
"""
