"""Workflows: jobs that wait for other jobs (chains, fan-out, fan-in), described once and scheduled together.

    wf = Workflow("month-end", tenant_id=t)
    invoices = [wf.add("generate-invoice", {"cycle": c}) for c in cycles]
    archive = wf.add("invoice_zip", {"month": m}, after=invoices)
    wf.add("invoice_email", {"month": m}, after=[archive])
    result = runner.schedule_workflow(wf)

Each step is a normal job (its own `jobs` row, retries, timeout, queue) whose metadata names its workflow and
its dependencies. This module only describes and validates; the backends run it (pgboss: dependency edges
settled in the statement that ends a job, see queue/sql.py; Temporal: one orchestrating workflow).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import tracking, validation
from .exceptions import InvalidWorkflow
from .ids import new_id
from .registry import JobHandlerRegistry


class Step:
    """One job of a workflow. Its id is fixed when it is added, so `after=` can name it before scheduling."""

    __slots__ = (
        "workflow",
        "index",
        "job_name",
        "data",
        "dependencies",
        "run_after_failure",
        "priority",
        "metadata",
        "job_id",
    )

    def __init__(
        self,
        workflow: Workflow,
        index: int,
        job_name: str,
        data: dict[str, Any],
        *,
        run_after_failure: bool,
        priority: int,
        metadata: dict[str, Any] | None,
    ) -> None:
        self.workflow = workflow
        self.index = index
        self.job_name = job_name
        self.data = data
        self.dependencies: list[Any] = []
        self.run_after_failure = run_after_failure
        self.priority = priority
        self.metadata = metadata
        self.job_id = new_id()

    def after(self, *steps: Step) -> Step:
        """Add dependencies after the fact (a graph need not be built in order; cycles are refused when the
        workflow is scheduled)."""
        self.dependencies.extend(steps)
        return self

    @property
    def label(self) -> str:
        return f"step {self.index + 1} ({self.job_name})"

    def __repr__(self) -> str:
        return f"<Step {self.label} of workflow {self.workflow.name!r}>"


class Workflow:
    """A named graph of steps of one tenant. Build it with `add`, schedule it with `runner.schedule_workflow`."""

    def __init__(
        self,
        name: str,
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.metadata = metadata
        self.steps: list[Step] = []
        self.workflow_id = new_id()

    def add(
        self,
        job_name: str,
        data: dict[str, Any] | None = None,
        *,
        after: Iterable[Step] = (),
        run_after_failure: bool = False,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Step:
        """A step running `job_name` once every step in `after` completed. With `run_after_failure=True` it
        also runs when one of them ended failed or cancelled (otherwise it is cancelled with them)."""
        step = Step(
            self,
            len(self.steps),
            job_name,
            {} if data is None else data,
            run_after_failure=bool(run_after_failure),
            priority=priority,
            metadata=metadata,
        )
        step.after(*after)
        self.steps.append(step)
        return step

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} {len(self.steps)} steps>"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowResult:
    """What `schedule_workflow` created: the workflow's id and its steps' job ids, in the order they were added."""

    workflow_id: str
    job_ids: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStatus:
    job_id: str
    job_name: str
    status: str
    depends_on: list[str]
    run_after_failure: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStatus:
    """A workflow as the record shows it. `status` is `completed` when every step completed, `processing` while
    any step is unfinished, and otherwise `failed` (some step failed) or `cancelled`."""

    workflow_id: str
    name: str
    status: str
    steps: list[StepStatus] = field(default_factory=list)
    #: Steps per status, a step superseded by its retry not counted.
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedStep:
    """A validated step, ready to write: its `jobs` metadata is built, its dependencies are ids."""

    job_id: uuid.UUID
    job_name: str
    priority: int
    max_attempts: int
    metadata_json: str
    depends_on: list[uuid.UUID]
    run_after_failure: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowPlan:
    workflow_id: uuid.UUID
    name: str
    tenant: uuid.UUID
    user: uuid.UUID
    steps: list[PlannedStep]


def plan(wf: Workflow) -> WorkflowPlan:
    """Validate a workflow and turn it into what the backends write; raises before anything is written.

    Errors: InvalidWorkflow (name, empty, a dependency on a step of another workflow, of another tenant or on
    something that is not a step, a cycle), JobHandlerNotFound (an unknown handler), and the usual payload,
    priority, metadata and tenant errors of a single job."""
    if not isinstance(wf, Workflow):
        raise InvalidWorkflow(f"schedule_workflow expects a Workflow, got {type(wf).__name__}")
    if not isinstance(wf.name, str) or not wf.name.strip() or len(wf.name) > 255:
        raise InvalidWorkflow(
            f"A workflow name must be a non-empty string of at most 255 characters, got {wf.name!r}"
        )
    if not wf.steps:
        raise InvalidWorkflow(f"Workflow {wf.name!r} has no steps")
    tenant = _workflow_tenant(wf)
    user = validation.resolve_user(wf.user_id)
    extra = validation.encode_metadata(wf.metadata)
    for step in wf.steps:
        _check_dependencies(wf, step, tenant)
    _check_acyclic(wf)
    planned = []
    for step in wf.steps:
        spec = JobHandlerRegistry.get(step.job_name)
        text = validation.encode_data(step.data)
        priority = validation.check_priority(step.priority)
        deps = list(dict.fromkeys(d.job_id for d in step.dependencies))
        step_meta = {
            **extra,
            **validation.encode_metadata(step.metadata),
            "workflowId": str(wf.workflow_id),
            "workflowName": wf.name,
            "dependsOn": [str(d) for d in deps],
            "workflowStep": step.index + 1,
        }
        if step.run_after_failure:
            step_meta["runAfterFailure"] = True
        planned.append(
            PlannedStep(
                job_id=step.job_id,
                job_name=step.job_name,
                priority=priority,
                max_attempts=spec.retry.max_attempts,
                metadata_json=tracking.build_metadata(
                    text,
                    extra=step_meta,
                    max_attempts=spec.retry.max_attempts,
                    priority=priority,
                    queue=spec.queue,
                    timeout_ms=spec.timeout_ms,
                ),
                depends_on=deps,
                run_after_failure=step.run_after_failure,
            )
        )
    return WorkflowPlan(workflow_id=wf.workflow_id, name=wf.name, tenant=tenant, user=user, steps=planned)


def _workflow_tenant(wf: Workflow) -> uuid.UUID:
    """The workflow's tenant: its tenant_id, else the steps' `tenantId`; every step must agree with it."""
    if wf.tenant_id is not None:
        tenant = validation.resolve_tenant(wf.tenant_id, None)
    else:
        first = next((s.data.get("tenantId") for s in wf.steps if isinstance(s.data, dict)), None)
        tenant = validation.resolve_tenant(first, None)
    for step in wf.steps:
        if isinstance(step.data, dict) and step.data.get("tenantId") not in (None, ""):
            own = validation.resolve_tenant(step.data["tenantId"], None)
            if own != tenant:
                raise InvalidWorkflow(
                    f"Workflow {wf.name!r}: {step.label} has tenantId {own}, but the workflow belongs to "
                    f"tenant {tenant}"
                )
    return tenant


def _check_dependencies(wf: Workflow, step: Step, tenant: uuid.UUID) -> None:
    for dep in step.dependencies:
        if not isinstance(dep, Step):
            raise InvalidWorkflow(
                f"Workflow {wf.name!r}: {step.label} depends on {dep!r}, which is not a step of this workflow "
                f"(pass the Step that add() returned)"
            )
        if dep.workflow is wf:
            continue
        other = dep.workflow
        other_tenant = None
        try:
            other_tenant = _workflow_tenant(other)
        except Exception:  # the other workflow's own errors are not this one's: it is foreign either way
            other_tenant = None
        where = "of another tenant" if other_tenant is not None and other_tenant != tenant else ""
        raise InvalidWorkflow(
            f"Workflow {wf.name!r}: {step.label} depends on {dep.label} of workflow {other.name!r}"
            f"{' ' + where if where else ''}; a step may only depend on steps of its own workflow"
        )


def _check_acyclic(wf: Workflow) -> None:
    """Depth-first search; the first cycle found is named step by step."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    path: list[Step] = []

    def visit(step: Step) -> None:
        state[step.index] = 1
        path.append(step)
        for dep in step.dependencies:
            mark = state.get(dep.index)
            if mark == 1:
                cycle = path[path.index(dep) :] + [dep]
                raise InvalidWorkflow(
                    f"Workflow {wf.name!r} has a dependency cycle: "
                    + " -> ".join(s.label for s in cycle)
                    + " (each waits for the next)"
                )
            if mark is None:
                visit(dep)
        path.pop()
        state[step.index] = 2

    for step in wf.steps:
        if step.index not in state:
            visit(step)


def workflow_status_from_rows(workflow_id: str, name: str, jobs: Sequence[Any]) -> WorkflowStatus:
    """Summarise a workflow from its steps' `jobs` rows (both backends write the same rows)."""
    from .models import FINAL_STATUSES, JobStatus

    steps, counts = [], {}
    # In the order the steps were added (a retry right after the step it retries).
    jobs = sorted(
        jobs, key=lambda j: (int(j.meta.get("workflowStep") or 0), j.created_at is None, j.created_at)
    )
    # A step retried (from the dashboard) is superseded by its retry: the retry's outcome is the step's.
    superseded = {str(j.meta.get("retryOf")) for j in jobs if j.meta.get("retryOf")}
    for job in jobs:
        meta = job.meta
        if str(job.job_id) not in superseded:
            counts[job.status] = counts.get(job.status, 0) + 1
        steps.append(
            StepStatus(
                job_id=str(job.job_id),
                job_name=job.type,
                status=job.status,
                depends_on=list(meta.get("dependsOn") or []),
                run_after_failure=bool(meta.get("runAfterFailure")),
                reason=meta.get("cancelReason") or meta.get("error"),
            )
        )
    total = sum(counts.values())
    finished = sum(counts.get(s, 0) for s in FINAL_STATUSES)
    if finished < total:
        status = JobStatus.PROCESSING
    elif counts.get(JobStatus.COMPLETED, 0) == total:
        status = JobStatus.COMPLETED
    elif counts.get(JobStatus.FAILED, 0):
        status = JobStatus.FAILED
    else:
        status = JobStatus.CANCELLED
    return WorkflowStatus(workflow_id=workflow_id, name=name, status=status, steps=steps, counts=counts)
