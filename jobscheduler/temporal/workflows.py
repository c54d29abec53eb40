"""Workflows on Temporal, the record side: writing a workflow's rows, and choosing what a retry resumes.

The rows are the ones pgboss writes (a `jobscheduler_workflows` row, one `jobs` row per step with its
`workflowId` and `dependsOn`), written `pending` in the caller's transaction; the orchestrating workflow
(graph.py) starts after the commit and moves each step along as its child workflow runs.
"""

from __future__ import annotations

import json
import uuid
from collections import deque

from .. import tracking
from ..exceptions import StepNotRetryable
from ..models import FINAL_STATUSES, Job, JobStatus
from ..models import Workflow as WorkflowRow
from ..states import RunnerType
from ..workflows import WorkflowPlan


def graph_workflow_id(workflow_id: uuid.UUID | str, retry: uuid.UUID | str | None = None) -> str:
    """The orchestrating workflow's id; a run resuming the workflow after a retry has its own."""
    return f"jobworkflow-{workflow_id}" + (f"-retry-{retry}" if retry else "")


def write_rows(plan: WorkflowPlan) -> None:
    """The workflow row and every step's `jobs` row (`pending`), on Django's connection."""
    WorkflowRow.objects.create(
        id=plan.workflow_id,
        tenant=plan.tenant,
        name=plan.name,
        runner_type=RunnerType.TEMPORAL,
        user_id=plan.user,
        step_count=len(plan.steps),
        external_id=graph_workflow_id(plan.workflow_id),
    )
    tracking.record_created(
        [tracking.NewJob(plan.tenant, s.job_id, s.job_name, s.metadata_json, plan.user) for s in plan.steps],
        status=JobStatus.PENDING,
        runner_type=RunnerType.TEMPORAL,
    )


def write_retry(job: Job, retry_id: uuid.UUID) -> list[Job]:
    """The retry's `jobs` row (`pending`, in the same workflow) and the steps it resumes, recorded `pending`
    again; returns the resumed steps as they now are."""
    meta = job.meta
    cause = meta.get("cancelledByJob")
    if cause:
        raise StepNotRetryable(
            f"Job {job.job_id} was cancelled because its dependency {cause} did not complete: "
            "retry that step instead"
        )
    steps = list(Job.objects.filter(tenant=job.tenant).in_workflow(meta["workflowId"]))
    resumed = _resumable(str(job.job_id), steps)
    extra = {
        k: meta[k]
        for k in ("workflowId", "workflowName", "workflowStep", "dependsOn", "runAfterFailure")
        if k in meta
    }
    extra["retryOf"] = str(job.job_id)
    data = meta.get("data")
    tracking.record_created(
        [
            tracking.NewJob(
                job.tenant,
                retry_id,
                job.type,
                tracking.build_metadata(
                    json.dumps(data if isinstance(data, dict) else {}, separators=(",", ":")),
                    extra=extra,
                    max_attempts=meta.get("maxAttempts"),
                    priority=int(meta.get("priority") or 0),
                    timeout_ms=meta.get("timeoutMs"),
                ),
                job.user_id,
            )
        ],
        status=JobStatus.PENDING,
        runner_type=RunnerType.TEMPORAL,
    )
    if resumed:
        tracking.record_resumed(
            job.tenant,
            [s.job_id for s in resumed],
            retried=job.job_id,
            retry=retry_id,
            reason=f"Resumed: dependency {job.type} (job {job.job_id}) retried as job {retry_id}",
        )
    return list(Job.objects.filter(tenant=job.tenant, job_id__in=[s.job_id for s in resumed]))


def _resumable(retried: str, steps: list[Job]) -> list[Job]:
    """The steps cancelled because of the retried job, transitively (`cancelledByJob`), except those another
    failed or cancelled dependency outside them also blocks (they stay cancelled)."""
    by_id = {str(s.job_id): s for s in steps}
    children: dict[str, list[str]] = {}
    for step in steps:
        cause = step.meta.get("cancelledByJob")
        if step.status == JobStatus.CANCELLED and cause:
            children.setdefault(str(cause), []).append(str(step.job_id))
    chosen: set[str] = set()
    todo = deque(children.get(retried, []))
    while todo:
        job_id = todo.popleft()
        if job_id not in chosen:
            chosen.add(job_id)
            todo.extend(children.get(job_id, []))
    changed = True
    while changed:
        changed = False
        for job_id in sorted(chosen):
            step = by_id[job_id]
            if step.meta.get("runAfterFailure"):
                continue
            for dep in step.meta.get("dependsOn") or []:
                other = by_id.get(dep)
                blocked = other is not None and other.status in (JobStatus.FAILED, JobStatus.CANCELLED)
                if dep != retried and dep not in chosen and blocked:
                    chosen.discard(job_id)
                    changed = True
                    break
    return [by_id[j] for j in sorted(chosen)]


def settled_outside(run: list[Job], steps: list[Job]) -> dict[str, str]:
    """The outcomes of the finished steps a resuming run depends on but does not run itself."""
    inside = {str(s.job_id) for s in run}
    by_id = {str(s.job_id): s for s in steps}
    settled = {}
    for step in run:
        for dep in step.meta.get("dependsOn") or []:
            other = by_id.get(dep)
            if dep not in inside and other is not None and other.status in FINAL_STATUSES:
                settled[dep] = str(other.status)
    return settled
