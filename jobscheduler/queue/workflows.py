"""Workflows on pgboss: writing one, cancelling one, and resuming one after a step is retried.

Running one needs nothing here: a waiting step is parked in the queue (run_at sql.PARKED_UNTIL, `waiting_on` > 0),
and the statement that ends a job settles the steps waiting on it (sql.SETTLE_DEPENDENTS).
"""

from __future__ import annotations

import json
import uuid
from collections import deque

from django.db import connection, transaction

from .. import tracking
from ..exceptions import StepNotRetryable
from ..ids import new_id
from ..models import Job, JobStatus, WorkflowDependency
from ..workflows import WorkflowPlan
from . import sql
from .connection import django_prepared_cursor
from .enqueue import enqueue


def enqueue_workflow(plan: WorkflowPlan) -> None:
    """Write the whole workflow in one statement on Django's connection (joins the caller's transaction)."""
    items = [
        {
            "tenant": str(plan.tenant),
            "id": str(step.job_id),
            "name": step.job_name,
            "meta": json.loads(step.metadata_json),
            "priority": step.priority,
            "max_attempts": step.max_attempts,
            "deps": [str(d) for d in step.depends_on],
            "raf": step.run_after_failure,
        }
        for step in plan.steps
    ]
    with django_prepared_cursor() as cur:
        cur.execute(
            sql.ENQUEUE_WORKFLOW,
            {
                "items": json.dumps(items, separators=(",", ":")),
                "workflow_id": plan.workflow_id,
                "tenant": plan.tenant,
                "name": plan.name,
                "user_id": plan.user,
                "step_count": len(plan.steps),
                "runner_type": "pgboss",
            },
        )


def cancel_workflow(workflow_id: uuid.UUID, tenant: uuid.UUID) -> int:
    """Cancel every unfinished step; returns how many were cancelled or asked to stop."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql.CANCEL_WORKFLOW, {"tenant": tenant, "workflow_id": workflow_id})
        removed, flagged = cur.fetchone()
    return int(removed) + int(flagged)


def retry_step(job: Job) -> uuid.UUID:
    """Retry a finished workflow step as a new job of the same workflow and resume the steps its failure
    cancelled: they wait for the retry instead (their edges are re-pointed to it), with their counts of
    completed dependencies intact. A step that another failed dependency still blocks stays cancelled,
    handed over to that dependency (a retry of it resumes the step)."""
    meta = job.meta
    with transaction.atomic():
        parked = _parked_rows(job)
        if job.job_id in parked:
            raise StepNotRetryable(
                f"Job {job.job_id} was cancelled because its dependency {parked[job.job_id]} did not "
                "complete: retry that step instead"
            )
        retry_id = new_id()
        data = meta.get("data")
        extra = {
            key: meta[key]
            for key in ("workflowId", "workflowName", "workflowStep", "dependsOn", "runAfterFailure")
            if key in meta
        }
        extra["retryOf"] = str(job.job_id)
        max_attempts = int(meta.get("maxAttempts") or 3)
        priority = int(meta.get("priority") or 0)
        with django_prepared_cursor() as cur:
            enqueue(
                cur,
                job_name=job.type,
                tenants=[job.tenant],
                ids=[retry_id],
                metas=[
                    tracking.build_metadata(
                        json.dumps(data if isinstance(data, dict) else {}, separators=(",", ":")),
                        extra=extra,
                        max_attempts=max_attempts,
                        priority=priority,
                    )
                ],
                user=job.user_id,
                priority=priority,
                max_attempts=max_attempts,
            )
        edges = list(
            WorkflowDependency.objects.filter(tenant=job.tenant, workflow_id=meta["workflowId"]).values_list(
                "depends_on", "job_id", "run_after_failure"
            )
        )
        statuses = dict(
            Job.objects.filter(tenant=job.tenant, job_id__in={e[0] for e in edges}).values_list(
                "job_id", "status"
            )
        )
        resumed, handed_over = _resumable(job.job_id, parked, edges, statuses)
        with connection.cursor() as cur:
            for step, blocker in handed_over.items():
                cur.execute(
                    "UPDATE jobscheduler_queue SET blocked_by = %s WHERE job_id = %s", [blocker, step]
                )
            if resumed:
                ids = list(resumed)
                # Edges into the resumed steps from the retried job or other resumed steps count again; those
                # that had counted as run-after-failure credits give their count back.
                sources = [job.job_id, *ids]
                cur.execute(
                    """WITH reopened AS (
                           UPDATE jobscheduler_dependencies SET settled = false,
                               depends_on = CASE WHEN depends_on = %(retried)s THEN %(retry)s ELSE depends_on END
                           WHERE job_id = ANY(%(ids)s) AND depends_on = ANY(%(sources)s)
                           RETURNING job_id, run_after_failure
                       ), owed AS (
                           SELECT job_id, count(*) FILTER (WHERE run_after_failure) AS n FROM reopened GROUP BY job_id
                       )
                       UPDATE jobscheduler_queue q SET blocked_by = NULL, waiting_on = q.waiting_on + coalesce(o.n, 0)
                       FROM (SELECT unnest(%(ids)s::uuid[]) AS job_id) r LEFT JOIN owed o USING (job_id)
                       WHERE q.job_id = r.job_id""",
                    {"retried": job.job_id, "retry": retry_id, "ids": ids, "sources": sources},
                )
                tracking.record_resumed(
                    job.tenant,
                    ids,
                    retried=job.job_id,
                    retry=retry_id,
                    reason=f"Resumed: dependency {job.type} (job {job.job_id}) retried as job {retry_id}",
                    cursor=cur,
                )
    return retry_id


def _parked_rows(job: Job) -> dict[uuid.UUID, uuid.UUID]:
    """The workflow's parked steps (cancelled because of a dependency) and what blocks each, locked: a
    dependency of theirs that finishes meanwhile waits for this transaction, then counts on the resumed row."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT q.job_id, q.blocked_by FROM jobscheduler_queue q
               WHERE q.tenant = %s AND q.blocked_by IS NOT NULL
                 AND q.job_id IN (SELECT job_id FROM jobscheduler_dependencies
                                  WHERE tenant = %s AND workflow_id = %s)
               ORDER BY q.job_id FOR UPDATE OF q""",
            [job.tenant, job.tenant, uuid.UUID(str(job.meta["workflowId"]))],
        )
        return dict(cur.fetchall())


def _resumable(
    retried: uuid.UUID,
    parked: dict[uuid.UUID, uuid.UUID],
    edges: list[tuple[uuid.UUID, uuid.UUID, bool]],
    statuses: dict[uuid.UUID, str],
) -> tuple[set[uuid.UUID], dict[uuid.UUID, uuid.UUID]]:
    """The parked steps below the retried job that resume, and those handed over to another blocker.

    Candidates are the parked steps reachable from the retried job along the edges. A candidate resumes unless a
    dependency outside the resuming set (and other than the retried job) ended failed or cancelled on an edge
    without run_after_failure; such a step stays parked, blocked by that dependency, and the steps below it are
    re-examined, until nothing changes."""
    dependents: dict[uuid.UUID, list[uuid.UUID]] = {}
    blocking: dict[uuid.UUID, list[uuid.UUID]] = {}
    for dep, step, run_after_failure in edges:
        dependents.setdefault(dep, []).append(step)
        if not run_after_failure:
            blocking.setdefault(step, []).append(dep)
    resumed: set[uuid.UUID] = set()
    todo = deque([retried])
    while todo:
        for step in dependents.get(todo.popleft(), []):
            if step in parked and step not in resumed:
                resumed.add(step)
                todo.append(step)
    handed_over: dict[uuid.UUID, uuid.UUID] = {}
    changed = True
    while changed:
        changed = False
        for step in sorted(resumed):
            blocker = next(
                (
                    dep
                    for dep in sorted(blocking.get(step, []))
                    if dep != retried
                    and dep not in resumed
                    and statuses.get(dep) in (JobStatus.FAILED, JobStatus.CANCELLED)
                ),
                None,
            )
            if blocker is not None:
                resumed.discard(step)
                handed_over[step] = blocker
                changed = True
    return resumed, handed_over
