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
from ..tracking import (
    CANCELLED_UNSTARTED_SQL,
    FINISHED_SQL,
    INSERT_JOBS_SQL,
    INSERT_STEPS_SQL,
    RELEASED_SQL,
    STARTED_SQL,
)

CHANNEL_JOBS = "jobscheduler_jobs"

#: The run time of a workflow step waiting for its dependencies: the claim's `run_at <= now()` never reaches it,
#: so the claim needs no clause of its own for waiting steps. The last Python datetime (not 'infinity', which
#: neither Python nor Django can load). A CHECK constraint ties `waiting_on > 0` to it (migration 0008).
PARKED_UNTIL = "'9999-12-31 00:00:00+00'::timestamptz"
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

#: A whole workflow in one statement (on the caller's connection: inside `transaction.atomic()` it exists iff the
#: transaction commits): its row, every step's queue row (those with dependencies parked at PARKED_UNTIL
#: with their `waiting_on` count), every step's `jobs` row (`queued`, or `pending` while waiting) and every
#: dependency edge. The steps arrive as one JSON array of {tenant, id, name, meta, priority, max_attempts,
#: deps: [ids], raf: bool}.
ENQUEUE_WORKFLOW = render_sql(
    """
WITH input AS (
    SELECT (item ->> 'tenant')::uuid AS tenant, (item ->> 'id')::uuid AS job_id, item ->> 'name' AS type,
           item -> 'meta' AS metadata, %(user_id)s::uuid AS user_id, (item ->> 'priority')::int AS priority,
           (item ->> 'max_attempts')::int AS max_attempts, item -> 'deps' AS deps, (item ->> 'raf')::boolean AS raf,
           jsonb_array_length(item -> 'deps') AS waiting_on,
           CASE WHEN jsonb_array_length(item -> 'deps') > 0 THEN 'pending' ELSE 'queued' END AS status
    FROM jsonb_array_elements(%(items)s::jsonb) AS item
),
workflow AS (
    INSERT INTO jobscheduler_workflows (id, tenant, name, runner_type, user_id, step_count, created_at)
    VALUES (%(workflow_id)s, %(tenant)s, %(name)s, $RUNNER_PGBOSS, %(user_id)s, %(step_count)s, now())
),
queued AS (
    INSERT INTO jobscheduler_queue (job_id, tenant, name, priority, run_at, attempt, max_attempts, singleton_key,
                                    cancel_requested, created_at, waiting_on)
    SELECT job_id, tenant, type, priority, CASE WHEN waiting_on > 0 THEN """
    + PARKED_UNTIL
    + """ ELSE now() END,
           0, max_attempts, NULL, false, now(), waiting_on
    FROM input
),
edges AS (
    INSERT INTO jobscheduler_dependencies (tenant, workflow_id, job_id, depends_on, run_after_failure, settled)
    SELECT input.tenant, %(workflow_id)s, input.job_id, dep.value::uuid, input.raf, false
    FROM input CROSS JOIN LATERAL jsonb_array_elements_text(input.deps) AS dep(value)
),
src AS (SELECT * FROM input),
created AS ("""
    + INSERT_STEPS_SQL
    + """    RETURNING job_id
)
SELECT count(*), pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM created
"""
)

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
    RETURNING q.tenant, q.job_id, q.attempt, q.name, q.max_attempts, q.lease_token,
              extract(epoch FROM now() - q.run_at)::float8 AS lag
)"""
    + STARTED_SQL
    + """
SELECT src.job_id, src.tenant, src.name, src.attempt, src.max_attempts, src.lease_token, started.data::text,
       src.lag, started.traceparent, started.tracestate
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

# -- workflow dependents (a fragment of every statement that ends a job: FINISH, RESCUE, CANCEL_QUEUED) --------

#: Reads `done(tenant, job_id, outcome)`, the jobs this statement ended (final outcomes only), and settles the
#: dependency edges out of them, in the same statement:
#: - a completed dependency (or a failed/cancelled one, on an edge added with run_after_failure) counts down
#:   its dependent's `waiting_on`; the one reaching 0 is released (run_at now()) and recorded `queued`;
#: - a failed or cancelled dependency cancels its dependents, transitively along the edges without
#:   run_after_failure (the `cancelled_nodes` recursion: UNION keeps each step once, so it takes at most one
#:   row per step of the workflow). A cancelled step is recorded `cancelled` naming the dependency, and its
#:   queue row stays parked (`blocked_by`) so a retry of that dependency can resume it.
#: The recursion only proposes; an edge is applied by the UPDATE of `settled_edges`, which takes unsettled edges
#: under their row locks. Two statements ending two dependencies of one step at the same instant therefore
#: serialise on that step's queue row and its edges: each edge counts once, the step is released once, by the
#: statement whose count reaches 0, and never before.
SETTLE_DEPENDENTS = render_sql(
    """,
cancelled_nodes(job_id) AS (
    SELECT d.job_id FROM done JOIN jobscheduler_dependencies d ON d.depends_on = done.job_id
    WHERE done.outcome <> $OUTCOME_COMPLETED AND NOT d.run_after_failure AND NOT d.settled
    UNION
    SELECT d.job_id FROM cancelled_nodes c JOIN jobscheduler_dependencies d ON d.depends_on = c.job_id
    WHERE NOT d.run_after_failure AND NOT d.settled
),
events AS (
    SELECT job_id, outcome FROM done
    UNION ALL
    SELECT job_id, $OUTCOME_CANCELLED FROM cancelled_nodes
),
settled_edges AS (
    UPDATE jobscheduler_dependencies d SET settled = true
    FROM events e
    WHERE d.depends_on = e.job_id AND NOT d.settled
    RETURNING d.job_id, d.depends_on, (e.outcome = $OUTCOME_COMPLETED OR d.run_after_failure) AS credit
),
effects AS (
    SELECT job_id, count(*) FILTER (WHERE credit) AS credits,
           (min(depends_on::text) FILTER (WHERE NOT credit))::uuid AS cause
    FROM settled_edges GROUP BY job_id
),
touched AS (
    UPDATE jobscheduler_queue q
    SET waiting_on = q.waiting_on - e.credits,
        blocked_by = coalesce(q.blocked_by, e.cause),
        run_at = CASE WHEN q.waiting_on = e.credits AND q.blocked_by IS NULL AND e.cause IS NULL THEN now()
                      ELSE q.run_at END
    FROM effects e
    WHERE q.job_id = e.job_id AND q.lease_token IS NULL AND q.waiting_on > 0
    RETURNING q.tenant, q.job_id, q.waiting_on, q.blocked_by, e.cause
),
ready_steps AS (SELECT tenant, job_id FROM touched WHERE waiting_on = 0 AND blocked_by IS NULL),
unstarted AS (
    SELECT t.tenant, t.job_id, t.cause,
           format('Cancelled: dependency %%s (job %%s) %%s', c.type, c.job_id,
                  CASE WHEN (SELECT outcome FROM done WHERE done.job_id = t.cause) = $OUTCOME_FAILED
                       THEN 'failed' ELSE 'was cancelled' END) AS reason,
           NULL::text AS cancelled_by
    FROM touched t JOIN jobs c ON c.tenant = t.tenant AND c.job_id = t.cause
    WHERE t.blocked_by = t.cause
)"""
    + RELEASED_SQL
    + CANCELLED_UNSTARTED_SQL
)

# -- an attempt ends ----------------------------------------------------------------------------------------------

#: Buffered outcomes of many attempts in one statement. Final outcomes delete the queue row; retry puts it back
#: with its next run time (now() + the backoff: the database clock, not the worker's); released (shutdown) puts it back without using up the attempt. Fenced on
#: (job_id, lease_token, attempt); returns the job ids that were recorded (the rest were stale).
FINISH = render_sql(
    """
WITH RECURSIVE input AS (
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
    RETURNING q.tenant, q.job_id, i.outcome
),
done AS (SELECT tenant, job_id, outcome FROM ended)"""
    + SETTLE_DEPENDENTS
    + """,
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
    + """', '') FROM (SELECT job_id FROM requeued UNION ALL SELECT job_id FROM ready_steps) woken LIMIT 1)
FROM finished f
"""
)

# -- cancel (on the caller's Django connection) --------------------------------------------------------------------

#: A queued (or waiting) job is removed from the queue: it never runs; the steps waiting on it are settled as
#: after any cancellation. Returns its id when it was queued. A step already cancelled because of a dependency
#: (parked, `blocked_by` set) is not queued any more: it is left for a retry of that dependency to resume.
CANCEL_QUEUED = render_sql(
    """
WITH RECURSIVE ended AS (
    DELETE FROM jobscheduler_queue
    WHERE tenant = %(tenant)s AND job_id = %(job_id)s AND lease_token IS NULL AND blocked_by IS NULL
    RETURNING tenant, job_id
),
done AS (SELECT tenant, job_id, $OUTCOME_CANCELLED AS outcome FROM ended)"""
    + SETTLE_DEPENDENTS
    + """
SELECT job_id, (SELECT pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM ready_steps LIMIT 1) FROM ended
"""
)

#: Every unfinished step of a workflow: queued, waiting and parked rows are removed and recorded cancelled
#: (their dependents are steps of the same workflow, cancelled here too, so nothing is settled); running ones
#: are flagged, as by CANCEL_RUNNING, and end `cancelled` through FINISH. Returns (removed, flagged).
CANCEL_WORKFLOW = (
    """
WITH steps AS (
    SELECT job_id FROM jobs
    WHERE tenant = %(tenant)s AND metadata ->> 'workflowId' = %(workflow_id)s::text
      AND metadata ? 'workflowId' AND status NOT IN ('completed', 'failed', 'cancelled')
),
removed AS (
    DELETE FROM jobscheduler_queue q USING steps
    WHERE q.tenant = %(tenant)s AND q.job_id = steps.job_id AND q.lease_token IS NULL
    RETURNING q.tenant, q.job_id
),
flagged AS (
    UPDATE jobscheduler_queue q SET cancel_requested = true FROM steps
    WHERE q.tenant = %(tenant)s AND q.job_id = steps.job_id AND q.lease_token IS NOT NULL
    RETURNING q.job_id, pg_notify('"""
    + CHANNEL_CANCEL
    + """', q.job_id::text)
),
parked AS (  -- steps already cancelled because of a dependency: no longer resumable
    DELETE FROM jobscheduler_queue q
    USING jobs j
    WHERE j.tenant = %(tenant)s AND j.metadata ->> 'workflowId' = %(workflow_id)s::text
      AND j.metadata ? 'workflowId' AND q.job_id = j.job_id AND q.blocked_by IS NOT NULL
),
unstarted AS (SELECT tenant, job_id, 'Workflow cancelled'::text AS reason, NULL::uuid AS cause,
                     NULL::text AS cancelled_by FROM removed)"""
    + CANCELLED_UNSTARTED_SQL
    + """
SELECT (SELECT count(*) FROM removed), (SELECT count(*) FROM flagged)
"""
)

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
WITH RECURSIVE expired AS (
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
done AS (SELECT tenant, job_id, outcome FROM ended)"""
    + SETTLE_DEPENDENTS
    + """,
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
    + """', '') FROM (SELECT job_id FROM requeued UNION ALL SELECT job_id FROM ready_steps) woken LIMIT 1)
FROM finished f
"""
)

EXPIRE_WORKERS = """
DELETE FROM jobscheduler_workers
WHERE heartbeat_at < now() - make_interval(secs => %(expiry_seconds)s)
"""

#: Finished history older than the retention, in bounded batches (details first: the composite FK). A
#: workflow's row goes with its last step (PRUNE_WORKFLOWS).
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
),
edges AS (  -- a pruned workflow step's edges, and its queue row if it was parked (cancelled by a dependency)
    DELETE FROM jobscheduler_dependencies d USING old WHERE d.job_id = old.job_id
),
parked AS (
    DELETE FROM jobscheduler_queue q USING old WHERE q.job_id = old.job_id AND q.blocked_by IS NOT NULL
)
DELETE FROM jobs j USING old WHERE j.tenant = old.tenant AND j.job_id = old.job_id
"""

PRUNE_WORKFLOWS = """
DELETE FROM jobscheduler_workflows w
WHERE w.created_at < now() - make_interval(days => %(days)s)
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.tenant = w.tenant AND j.metadata ? 'workflowId'
                  AND j.metadata ->> 'workflowId' = w.id::text)
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
