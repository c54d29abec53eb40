"""The bare-Temporal peer's workflows: one workflow execution per job, running one activity (the usual shape)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.peers.temporal_activities import noop_activity, probe_activity

TASK_QUEUE = "bench"
TIMEOUT = timedelta(seconds=60)


@workflow.defn(name="NoopWorkflow")
class NoopWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop_activity, start_to_close_timeout=TIMEOUT)


@workflow.defn(name="ProbeWorkflow")
class ProbeWorkflow:
    @workflow.run
    async def run(self, t0: float) -> None:
        await workflow.execute_activity(probe_activity, t0, start_to_close_timeout=TIMEOUT)
