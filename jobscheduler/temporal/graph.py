"""JobGraphWorkflow: one orchestrating workflow per `Workflow`, each step a GenericJobWorkflow child.

A step's child starts once every step it waits for has ended; the children record the steps in the same `jobs`
rows as any Temporal job, so the dashboard does not change. A step whose dependency ended failed or cancelled
(without run_after_failure) is recorded cancelled, naming that dependency, and is never started. The
`cancelWorkflow` signal cancels the steps not yet started and signals the running children to stop. Like all
workflow code this is replayed: it only keeps state and starts children and activities. Like GenericJobWorkflow
it runs outside the SDK's sandbox (see workflow.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from .inputs import (
        ACTIVITY_FINALIZE,
        ACTIVITY_STEP_QUEUED,
        BOOKKEEPING_TIMEOUT,
        GRAPH_WORKFLOW_NAME,
        SIGNAL_CANCEL,
        SIGNAL_CANCEL_WORKFLOW,
        WORKFLOW_NAME,
        FinalizeInput,
        GraphInput,
        GraphStep,
        StepQueuedInput,
    )

COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"


def step_workflow_id(job_id: str) -> str:
    """The child's id, as for any Temporal job (`job-<id>`), so job pages and cancel_job find it."""
    return f"job-{job_id}"


@workflow.defn(name=GRAPH_WORKFLOW_NAME, sandboxed=False)
class JobGraphWorkflow:
    def __init__(self) -> None:
        self._outcomes: dict[str, str] = {}
        self._cancel: str | None = None
        self._running: dict[str, workflow.ChildWorkflowHandle] = {}

    @workflow.run
    async def run(self, graph: GraphInput) -> dict[str, Any]:
        self._outcomes.update(graph.settled)
        names = {**graph.names, **{s.job.job_id: s.job.job_name for s in graph.steps}}
        await asyncio.gather(*(self._run_step(graph, step, names) for step in graph.steps))
        mine = [self._outcomes[s.job.job_id] for s in graph.steps]
        status = COMPLETED if all(o == COMPLETED for o in mine) else FAILED if FAILED in mine else CANCELLED
        return {
            "status": status,
            "outcomes": {s.job.job_id: self._outcomes[s.job.job_id] for s in graph.steps},
        }

    async def _run_step(self, graph: GraphInput, step: GraphStep, names: dict[str, str]) -> None:
        job_id = step.job.job_id
        await workflow.wait_condition(
            lambda: self._cancel is not None or all(d in self._outcomes for d in step.depends_on)
        )
        if self._cancel is not None:
            await self._cancelled(graph, job_id, self._cancel, None)
            return
        blocker = None
        if not step.run_after_failure:
            blocker = next((d for d in step.depends_on if self._outcomes[d] != COMPLETED), None)
        if blocker is not None:
            verb = "failed" if self._outcomes[blocker] == FAILED else "was cancelled"
            reason = f"Cancelled: dependency {names.get(blocker, '?')} (job {blocker}) {verb}"
            await self._cancelled(graph, job_id, reason, blocker)
            return
        child = await workflow.start_child_workflow(
            WORKFLOW_NAME,
            step.job,
            id=step_workflow_id(job_id),
            memo={"jobId": job_id, "tenant": graph.tenant, "jobName": step.job.job_name},
        )
        self._running[job_id] = child
        await workflow.execute_activity(
            ACTIVITY_STEP_QUEUED,
            StepQueuedInput(
                tenant=graph.tenant,
                job_id=job_id,
                external_id=step_workflow_id(job_id),
                run_id=child.first_execution_run_id,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        )
        try:
            result = await child
            outcome = result.get("status") if isinstance(result, dict) else None
        except ChildWorkflowError:
            outcome = FAILED
        self._running.pop(job_id, None)
        self._outcomes[job_id] = outcome if outcome in (COMPLETED, FAILED, CANCELLED) else FAILED

    async def _cancelled(self, graph: GraphInput, job_id: str, reason: str, cause: str | None) -> None:
        await workflow.execute_activity(
            ACTIVITY_FINALIZE,
            FinalizeInput(job_id=job_id, tenant=graph.tenant, outcome=CANCELLED, error=reason, cause=cause),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        )
        self._outcomes[job_id] = CANCELLED

    @workflow.signal(name=SIGNAL_CANCEL_WORKFLOW)
    async def cancel_workflow(self, request: dict[str, Any]) -> None:
        if self._cancel is not None:
            return
        self._cancel = str((request or {}).get("reason") or "Workflow cancelled")
        for child in list(self._running.values()):
            await child.signal(SIGNAL_CANCEL, {"reason": self._cancel})
