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

from ..queues import CONFIG_BARRIER_KEY, RATE_BUCKETS
from ..states import render_sql
from ..tracking import (
    CANCELLED_UNSTARTED_SQL,
    DATA_REPLACED_SQL,
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
    INSERT INTO jobscheduler_queue (job_id, tenant, name, queue, priority, run_at, attempt, max_attempts,
                                    singleton_key, cancel_requested, created_at)
    SELECT job_id, tenant, type, %(queue)s, %(priority)s, coalesce(%(run_at)s::timestamptz, now()), 0,
           %(max_attempts)s, %(singleton_key)s, false, now()
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

#: ENQUEUE for exactly one job, every value a scalar parameter with its own cast: no JSON array to parse and
#: no join back to the input, and a form libpq can send as is (jobscheduler/libpq.py sends it on the one-by-one hot
#: path). Returns the job id, or no row when a live job holds the singleton key.
ENQUEUE_ONE = (
    """
WITH queued AS (
    INSERT INTO jobscheduler_queue (job_id, tenant, name, queue, priority, run_at, attempt, max_attempts,
                                    singleton_key, cancel_requested, created_at)
    VALUES (%(job_id)s::uuid, %(tenant)s::uuid, %(type)s::varchar, %(queue)s::varchar, %(priority)s::int,
            coalesce(%(run_at)s::timestamptz, now()), 0, %(max_attempts)s::int, %(singleton_key)s::varchar, false,
            now())
    ON CONFLICT (tenant, singleton_key) WHERE singleton_key IS NOT NULL DO NOTHING
    RETURNING job_id, tenant, name
),
src AS (SELECT tenant, job_id, name AS type, %(metadata)s::jsonb AS metadata, %(user_id)s::uuid AS user_id
        FROM queued),
created AS ("""
    + INSERT_JOBS_SQL
    + """    RETURNING job_id
)
SELECT job_id, pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM created
"""
)

#: A debounced call (uniqueness.Debounce), under the (tenant, key) lock: the newest job with the key still
#: waiting gets the call's data and a run time %(window)s from now (never later than %(max_wait)s after it was
#: created). Returns its id; no row when no job with the key waits (a worker claiming it meanwhile wins).
DEBOUNCE = (
    """
WITH waiting AS (
    SELECT q.job_id, q.created_at FROM jobs j JOIN jobscheduler_queue q ON q.job_id = j.job_id
    WHERE j.tenant = %(tenant)s AND j.metadata ? 'uniqueKey' AND j.metadata ->> 'uniqueKey' = %(key)s
      AND j.status = 'queued' AND q.lease_token IS NULL
    ORDER BY j.created_at DESC
    LIMIT 1
    FOR UPDATE OF q
),
moved AS (
    UPDATE jobscheduler_queue q
    SET run_at = least(now() + %(window)s::interval, coalesce(w.created_at + %(max_wait)s::interval, 'infinity'))
    FROM waiting w
    WHERE q.job_id = w.job_id
    RETURNING q.tenant, q.job_id
),
src AS (SELECT tenant, job_id, %(data)s::jsonb AS data FROM moved)"""
    + DATA_REPLACED_SQL
    + """
SELECT job_id FROM moved
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
    INSERT INTO jobscheduler_queue (job_id, tenant, name, queue, priority, run_at, attempt, max_attempts,
                                    singleton_key, cancel_requested, created_at, waiting_on)
    SELECT job_id, tenant, type, coalesce(metadata ->> 'queue', 'default'), priority,
           CASE WHEN waiting_on > 0 THEN """
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

# -- claim (on the worker's connection, one transaction and one round trip: see producer.py) ----------------------

#: A queue settings row `c` with a limit of any kind.
_HAS_LIMIT = "(c.concurrency IS NOT NULL OR c.tenant_concurrency IS NOT NULL OR c.rate_limit IS NOT NULL)"

#: Whether any queue this claim may start jobs of has live settings that need the full claim (CLAIM): a limit or
#: the paused flag. Without one, CLAIM_UNLIMITED does the same work without the limit branches (what that is
#: worth to the drain: docs/performance.md); the worker picks by what CLAIM_BEGIN returned last time.
_LIMITED_OR_PAUSED = f"""
EXISTS (SELECT 1 FROM jobscheduler_queues c
        WHERE (c.paused OR {_HAS_LIMIT})
          AND (%(queues)s::text[] IS NULL OR c.name = ANY(%(queues)s::text[])))"""

#: First statement of a claim. It holds the queue-settings barrier (shared) before the claim's snapshot is taken,
#: so a pause or limit change that has returned is seen by this claim (see queues.CONFIG_BARRIER_KEY). And it
#: locks the settings row of every limited queue this claim may start jobs of, in name order: claims of a
#: limited queue run one at a time, each after the previous one committed, so the claim statement that follows
#: (with a snapshot taken after the lock) counts every job the others leased. A row another claim holds is
#: skipped (that claim serves the queue now; claims never queue up behind each other), and so is a queue with no
#: ready job or visibly at its global limit. The locked names are handed to the claim statement in a
#: transaction-local setting. A claim transaction left idle (its worker frozen mid-claim) is ended by the server
#: instead of holding its locks.
CLAIM_BEGIN = (
    f"""
WITH limited AS (
    SELECT c.name FROM jobscheduler_queues c
    WHERE {_HAS_LIMIT}
      AND NOT c.paused
      AND (%(queues)s::text[] IS NULL OR c.name = ANY(%(queues)s::text[]))
      -- a scalar subquery, probed per limited queue: an EXISTS would be planned as a join driven by every
      -- waiting job of the queue table, on every claim
      AND (SELECT 1 FROM jobscheduler_queue j
           WHERE j.queue = c.name AND j.lease_token IS NULL AND j.run_at <= now() LIMIT 1) IS NOT NULL
      AND (c.concurrency IS NULL
           OR (SELECT count(*) FROM jobscheduler_queue l
               WHERE l.queue = c.name AND l.lease_token IS NOT NULL) < c.concurrency)
    ORDER BY c.name
    FOR UPDATE OF c SKIP LOCKED
)
SELECT pg_advisory_xact_lock_shared(hashtext('{CONFIG_BARRIER_KEY}')),
       set_config('idle_in_transaction_session_timeout', '5s', true),
       set_config('jobscheduler.claim_locked', coalesce((SELECT json_agg(name) FROM limited), '[]')::text, true),
       """
    + _LIMITED_OR_PAUSED
    + """ AS limited_or_paused
"""
)

#: The queues a claim serves: every queue with a waiting job when the worker serves them all (%(queues)s NULL: one
#: index probe per queue, skipping through the ready index), else the ones it names.
_SERVED_CTES = """
waiting(queue) AS (
    -- every queue with a waiting job, one index probe per queue (only when the worker serves every queue)
    (SELECT queue FROM jobscheduler_queue
     WHERE lease_token IS NULL AND %(queues)s::text[] IS NULL
     ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT q.queue FROM jobscheduler_queue q
            WHERE q.lease_token IS NULL AND q.queue > w.queue
            ORDER BY q.queue LIMIT 1)
    FROM waiting w WHERE w.queue IS NOT NULL
),
served AS (
    SELECT queue FROM waiting WHERE queue IS NOT NULL
    UNION ALL
    SELECT unnest(%(queues)s::text[])
)
"""

#: Leases the jobs of `ready` (a CTE of job ids) to %(worker_id)s; its RETURNING is what STARTED_SQL and the
#: claim's result read.
_LEASE_CTE = """
src AS (
    UPDATE jobscheduler_queue q
    SET attempt = q.attempt + 1, lease_token = gen_random_uuid(), worker_id = %(worker_id)s,
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    FROM ready
    WHERE q.job_id = ready.job_id
    RETURNING q.tenant, q.job_id, q.attempt, q.name, q.max_attempts, q.lease_token, q.queue,
              extract(epoch FROM now() - q.run_at)::float8 AS lag
)
"""

#: The claim's result: what the worker needs to run each job, the payload included as JSON text (decoding it is
#: each job's own business, in its thread, so a hostile payload fails that job, not the worker).
_CLAIM_RESULT = (
    STARTED_SQL
    + """
SELECT src.job_id, src.tenant, src.name, src.attempt, src.max_attempts, src.lease_token, started.data::text,
       src.lag, started.traceparent, started.tracestate, src.queue
FROM src JOIN started USING (job_id)
"""
)

#: Claims up to %(limit)s ready jobs of the queues this worker serves (%(queues)s, NULL: every queue with a
#: waiting job; %(slots)s: this worker's free slots of the queues it caps), optionally only jobs named in
#: %(names)s; leases them to %(worker_id)s and records the start of their attempt. Paused queues are skipped. A limited queue is claimed from only when CLAIM_BEGIN locked it:
#: with `concurrency`, for at most that minus its leased jobs; with `rate_limit`, for at most that minus the starts
#: counted in its window (a bucket per 1/RATE_BUCKETS of the period, on the database clock read after the locks,
#: the current bucket and RATE_BUCKETS before it); with `tenant_concurrency`, each tenant with
#: waiting jobs for at most that minus the tenant's leased jobs of the queue (one index probe per tenant, so a
#: tenant's burst never hides the others' jobs). The jobs of a dead worker stay leased, so they keep their slots
#: until the lease is rescued. Each queue (each tenant of a tenant-limited queue) is read in its own (priority,
#: run time) order from a ready index and the best of all are claimed. Returns _CLAIM_RESULT.
CLAIM = (
    "WITH RECURSIVE"
    + _SERVED_CTES
    + """,
clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),  -- read once, after the locks were taken
budget AS (  -- how many jobs each queue may start now (a queue without a row of settings: no limit)
    SELECT s.queue, c.tenant_concurrency,
           least(
               -- this worker's own slots for the queue (runjobworker --queues emails:5), when it has any
               coalesce((%(slots)s::jsonb ->> s.queue)::int, %(limit)s),
               CASE WHEN c.concurrency IS NULL THEN %(limit)s
                    ELSE c.concurrency - (SELECT count(*) FROM jobscheduler_queue l
                                          WHERE l.queue = s.queue AND l.lease_token IS NOT NULL)
               END,
               CASE WHEN c.rate_limit IS NULL THEN %(limit)s
                    ELSE c.rate_limit - (  -- starts in the buckets of the last period and the one before it
                        SELECT coalesce(sum(w.value::int), 0) FROM jsonb_each_text(c.rate_window) w
                        WHERE w.key::bigint >= floor((SELECT now FROM clock)
                                                     / (c.rate_period_seconds / """
    + str(RATE_BUCKETS)
    + """))::bigint - """
    + str(RATE_BUCKETS)
    + """)
               END
           ) AS allowed
    FROM served s LEFT JOIN jobscheduler_queues c ON c.name = s.queue
    WHERE c.name IS NULL
       OR (NOT c.paused
           AND ((c.concurrency IS NULL AND c.tenant_concurrency IS NULL AND c.rate_limit IS NULL)
                OR s.queue IN (SELECT json_array_elements_text(
                                   current_setting('jobscheduler.claim_locked', true)::json))))
),
tenants(queue, tenant) AS (  -- each tenant with waiting jobs, per tenant-limited queue (skipping through an index)
    SELECT b.queue, (SELECT j.tenant FROM jobscheduler_queue j
                     WHERE j.queue = b.queue AND j.lease_token IS NULL ORDER BY j.tenant LIMIT 1)
    FROM budget b WHERE b.tenant_concurrency IS NOT NULL AND b.allowed > 0
    UNION ALL
    SELECT t.queue, (SELECT j.tenant FROM jobscheduler_queue j
                     WHERE j.queue = t.queue AND j.lease_token IS NULL AND j.tenant > t.tenant
                     ORDER BY j.tenant LIMIT 1)
    FROM tenants t WHERE t.tenant IS NOT NULL
),
per_tenant AS (  -- up to each tenant's free slots, then at most the queue's budget
    SELECT c.job_id, c.priority, c.run_at FROM (
        SELECT r.*, b.allowed, row_number() OVER (PARTITION BY r.queue ORDER BY r.priority DESC, r.run_at) AS nth
        FROM tenants t JOIN budget b ON b.queue = t.queue
        CROSS JOIN LATERAL (
            SELECT b.tenant_concurrency - count(*) AS free FROM jobscheduler_queue l
            WHERE l.queue = t.queue AND l.tenant = t.tenant AND l.lease_token IS NOT NULL
        ) f
        CROSS JOIN LATERAL (
            SELECT job_id, queue, priority, run_at FROM jobscheduler_queue
            WHERE queue = t.queue AND tenant = t.tenant AND lease_token IS NULL AND run_at <= now()
              AND (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
            ORDER BY priority DESC, run_at
            LIMIT least(f.free, b.allowed, %(limit)s)
            FOR UPDATE SKIP LOCKED
        ) r
        WHERE t.tenant IS NOT NULL AND f.free > 0
    ) c
    WHERE c.nth <= c.allowed
),
ready AS (
    SELECT job_id FROM (
        SELECT r.job_id, r.priority, r.run_at FROM budget b CROSS JOIN LATERAL (
            SELECT job_id, priority, run_at FROM jobscheduler_queue
            WHERE queue = b.queue AND lease_token IS NULL AND run_at <= now()
              AND (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
            ORDER BY priority DESC, run_at
            LIMIT least(b.allowed, %(limit)s)
            FOR UPDATE SKIP LOCKED
        ) r
        WHERE b.allowed > 0 AND b.tenant_concurrency IS NULL
        UNION ALL
        SELECT job_id, priority, run_at FROM per_tenant
    ) candidates
    ORDER BY priority DESC, run_at
    LIMIT %(limit)s
),
"""
    + _LEASE_CTE
    + """,
rated AS (  -- count the starts of rate-limited queues in their current bucket, dropping buckets out of reach
    UPDATE jobscheduler_queues c
    SET rate_window = (
        SELECT coalesce(jsonb_object_agg(bucket, starts), '{}'::jsonb) FROM (
            SELECT bucket, sum(starts) AS starts FROM (
                SELECT w.key::bigint AS bucket, w.value::int AS starts FROM jsonb_each_text(c.rate_window) w
                UNION ALL
                SELECT floor((SELECT now FROM clock) / (c.rate_period_seconds / """
    + str(RATE_BUCKETS)
    + """))::bigint, n.started
            ) counted
            WHERE bucket >= floor((SELECT now FROM clock) / (c.rate_period_seconds / """
    + str(RATE_BUCKETS)
    + """))::bigint - """
    + str(RATE_BUCKETS)
    + """
            GROUP BY bucket
        ) kept
    )
    FROM (SELECT queue, count(*) AS started FROM src GROUP BY queue) n
    WHERE c.name = n.queue AND c.rate_limit IS NOT NULL
      AND current_setting('jobscheduler.claim_locked', true) <> '[]'  -- no limited queue locked: nothing to do
)"""
    + _CLAIM_RESULT
)

#: Sent with CLAIM_UNLIMITED, in its transaction: that claim's commit does not wait for its WAL to be flushed to
#: disk (about 0.15 ms of a one-job claim here, on the path of a job's latency). Nothing of it can be lost that
#: matters: every later outcome the completer records commits synchronously, which flushes the WAL up to and
#: including the claim's writes, so no recorded end outlives its claim; and a claim a server crash loses before
#: any such flush leaves its jobs unleased, to be claimed and run again, as at-least-once allows (an attempt
#: of the lost claim that ends afterwards holds a lease token the row no longer has: its end is refused).
#: CLAIM keeps the synchronous commit: a lost lease of a limited queue would let a limit be exceeded after a crash.
CLAIM_COMMIT_UNFLUSHED = "SELECT set_config('synchronous_commit', 'off', true)"

#: The claim when no queue it may start jobs of is limited or paused (the common case: one unlimited "default"
#: queue): each served queue's best jobs, this worker's own slots of a queue kept (`--queues emails:5`), the best
#: of all claimed. It claims nothing when a queue it serves is limited or paused after all (the settings changed
#: since the worker last looked): that check is in this statement's own snapshot, taken after CLAIM_BEGIN's
#: barrier, so a pause or limit that has returned is never missed; the worker then claims with CLAIM.
CLAIM_UNLIMITED = (
    "WITH RECURSIVE"
    + _SERVED_CTES
    + """,
ready AS (
    SELECT r.job_id FROM served s CROSS JOIN LATERAL (
        SELECT job_id, priority, run_at FROM jobscheduler_queue
        WHERE queue = s.queue AND lease_token IS NULL AND run_at <= now()
          AND (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
        ORDER BY priority DESC, run_at
        LIMIT least(coalesce((%(slots)s::jsonb ->> s.queue)::int, %(limit)s), %(limit)s)
        FOR UPDATE SKIP LOCKED
    ) r
    WHERE NOT"""
    + _LIMITED_OR_PAUSED
    + """
    ORDER BY r.priority DESC, r.run_at
    LIMIT %(limit)s
),"""
    + _LEASE_CTE
    + _CLAIM_RESULT
)

#: Last statement of a claim: the rate windows of the rate-limited queues it locked (after this claim's starts),
#: so the worker can come back when the earliest of them lets a job start again.
CLAIM_RATE_WINDOWS = """
SELECT c.rate_limit, c.rate_period_seconds, c.rate_window, extract(epoch FROM clock_timestamp())::float8
FROM jobscheduler_queues c
WHERE current_setting('jobscheduler.claim_locked', true) <> '[]'  -- no limited queue locked: no work
  AND c.rate_limit IS NOT NULL
  AND c.name IN (SELECT json_array_elements_text(current_setting('jobscheduler.claim_locked', true)::json))
"""

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
INSERT INTO jobscheduler_workers (id, backend, host, pid, concurrency, job_names, queues, started_at,
                                  heartbeat_at, running_jobs)
VALUES (%(id)s, $RUNNER_PGBOSS, %(host)s, %(pid)s, %(concurrency)s, %(job_names)s::jsonb, %(queues)s::jsonb, now(),
        now(), '[]'::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
"""
)

WORKER_HEARTBEAT = """
UPDATE jobscheduler_workers SET heartbeat_at = now(), running_jobs = %(running)s::jsonb WHERE id = %(id)s
"""

UNREGISTER_WORKER = "DELETE FROM jobscheduler_workers WHERE id = %(id)s"

#: Job names with ready jobs (queued, due, not leased) that no live pgboss worker serves: a worker lists the
#: names it serves in `job_names` (and, with --queues, the queues in `queues`) and is live while its heartbeat
#: is younger than %(expiry_seconds)s. Only the first %(scan_limit)s ready jobs in each queue's claim order
#: (the ready index) are read: jobs nobody claims collect at the head of their queue's order, so they are found
#: there however long the queue is, and the read stays bounded.
UNSERVED = render_sql(
    """
WITH served AS (  -- a worker serves a job when it serves its name and (with --queues) its queue
    SELECT jsonb_array_elements_text(job_names) AS name, queues FROM jobscheduler_workers
    WHERE backend = $RUNNER_PGBOSS AND heartbeat_at > now() - make_interval(secs => %(expiry_seconds)s)
),
ready AS (
    SELECT name, queue FROM jobscheduler_queue
    WHERE lease_token IS NULL AND run_at <= now()
    ORDER BY queue, priority DESC, run_at
    LIMIT %(scan_limit)s
)
SELECT name, count(*) FROM ready r
WHERE NOT EXISTS (SELECT 1 FROM served s
                  WHERE s.name = r.name AND (s.queues = '[]'::jsonb OR s.queues ? r.queue))
GROUP BY name ORDER BY name
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
#: with its next run time (now() + the backoff: the database clock, not the worker's); released (shutdown) puts
#: it back without using up the attempt. Fenced on (job_id, lease_token, attempt); returns the job ids that were
#: recorded (the rest were stale). Workers are woken when a job went back to the queue, or when a job of a
#: limited queue ended (its slot is free).
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
    RETURNING q.tenant, q.job_id, i.outcome, q.queue
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
SELECT f.job_id,
       (SELECT pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM (SELECT job_id FROM requeued UNION ALL SELECT job_id FROM ready_steps) woken LIMIT 1),
       -- a job of a limited queue ended: its slot is free, and jobs may be waiting for it
       (SELECT pg_notify('"""
    + CHANNEL_JOBS
    + """', '') WHERE EXISTS (SELECT 1 FROM ended e JOIN jobscheduler_queues c ON c.name = e.queue
                             WHERE c.concurrency IS NOT NULL OR c.tenant_concurrency IS NOT NULL))
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

# -- bulk redrive (on the caller's Django connection, one statement per bounded batch of ids) ----------------------

#: Re-enqueues each finished job among %(ids)s of %(tenant)s as a new job (its data, queue and user; `retryOf` the
#: original; attempts per %(max_attempts)s, a JSON object of job name to its handler's max_attempts: jobs of
#: other names are left). Returns how many were enqueued, and wakes the workers.
REDRIVE_RETRY = (
    """
WITH input AS (
    SELECT j.tenant, jobscheduler_uuid7() AS job_id, j.type, j.user_id, a.max_attempts,
           coalesce(j.metadata ->> 'queue', 'default') AS queue,
           jsonb_build_object('data', coalesce(j.metadata -> 'data', '{}'::jsonb), 'attempts', 0,
                              'maxAttempts', a.max_attempts, 'queue', coalesce(j.metadata ->> 'queue', 'default'),
                              'retryOf', j.job_id::text) AS metadata
    FROM jobs j
    JOIN (SELECT key AS type, value::int AS max_attempts FROM jsonb_each_text(%(max_attempts)s::jsonb)) a
      ON a.type = j.type
    WHERE j.tenant = %(tenant)s AND j.job_id = ANY(%(ids)s::uuid[])
      AND j.status IN ('completed', 'failed', 'cancelled')
),
queued AS (
    INSERT INTO jobscheduler_queue (job_id, tenant, name, queue, priority, run_at, attempt, max_attempts,
                                    cancel_requested, created_at)
    SELECT job_id, tenant, type, queue, 0, now(), 0, max_attempts, false, now() FROM input
    RETURNING job_id
),
src AS (SELECT input.* FROM input JOIN queued USING (job_id)),
created AS ("""
    + INSERT_JOBS_SQL
    + """    RETURNING job_id
)
SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify('"""
    + CHANNEL_JOBS
    + """', '') END FROM created
"""
)

#: Cancels each live job among %(ids)s of %(tenant)s: a queued one is removed from the queue and recorded
#: cancelled (%(reason)s, %(cancelled_by)s); a running one is flagged, who asked recorded, and its worker told
#: (as CANCEL_RUNNING). Returns
#: (cancelled now, flagged to end cancelled).
REDRIVE_CANCEL = (
    """
WITH removed AS (
    DELETE FROM jobscheduler_queue
    WHERE tenant = %(tenant)s AND job_id = ANY(%(ids)s::uuid[]) AND lease_token IS NULL
    RETURNING tenant, job_id
),
flagged AS (
    UPDATE jobscheduler_queue SET cancel_requested = true
    WHERE tenant = %(tenant)s AND job_id = ANY(%(ids)s::uuid[]) AND lease_token IS NOT NULL
      AND NOT cancel_requested
    RETURNING job_id, pg_notify('"""
    + CHANNEL_CANCEL
    + """', job_id::text)
),
asked AS (  -- who asked and why, kept by the cancelled end that follows (as tracking.record_cancel_requested)
    UPDATE jobs j SET updated_at = now(),
        metadata = (coalesce(j.metadata, '{}'::jsonb) - 'cancelledBy')
            || jsonb_strip_nulls(jsonb_build_object('cancelReason', %(reason)s::text,
                                                    'cancelledBy', %(cancelled_by)s::text))
    FROM flagged f
    WHERE j.tenant = %(tenant)s AND j.job_id = f.job_id AND j.status NOT IN ('completed', 'failed', 'cancelled')
),
unstarted AS (SELECT tenant, job_id, %(reason)s::text AS reason, NULL::uuid AS cause,
                     %(cancelled_by)s::text AS cancelled_by FROM removed)"""
    + CANCELLED_UNSTARTED_SQL
    + """
SELECT (SELECT count(*) FROM cancelled_jobs), (SELECT count(*) FROM flagged)
"""
)

# -- maintenance (any worker; an advisory lock only saves duplicate work) ------------------------------------------

MAINTENANCE_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('jobscheduler_maintenance'))"

#: Puts back jobs whose lease expired (their worker died or stalled). Each rescue ends the lost attempt: it is
#: recorded as a failed attempt, retried now while attempts remain, failed when none remain, cancelled when a
#: cancel was requested. Workers are woken: a job is back, or a slot of a limited queue is free.
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
lost AS (SELECT * FROM requeued UNION ALL SELECT * FROM ended),
src AS (
    SELECT tenant, job_id, attempt, outcome, NULL::jsonb AS result,
           'Worker lost: the lease expired without a heartbeat' AS error, 'LeaseExpired' AS error_type,
           NULL::text AS tb, CASE WHEN outcome = $OUTCOME_RETRY THEN now() END AS next_at,
           NULL::timestamptz AS at
    FROM lost
)"""
    + FINISHED_SQL
    + """
SELECT f.job_id, f.outcome, (SELECT pg_notify('"""
    + CHANNEL_JOBS
    + """', '') FROM (SELECT job_id FROM lost UNION ALL SELECT job_id FROM ready_steps) woken LIMIT 1)
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
SELECT id, tenant, key, job_name, data, metadata, cron, interval_seconds, timezone, user_id, queue, next_run_at,
       now()
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
