"""JOB_RUNNER_TYPE=temporal with JOB_RUNNER_FALLBACK_TO_PGBOSS on: Temporal while it answers, pgboss for each job
Temporal could not be reached to start.

The choice is made per call, not once per process. A job is started on Temporal; when Temporal is unreachable,
its pending row is handed to pgboss under the same id (`fallbackReason` in its metadata) and the caller gets that
job. After a failure the Temporal runner does not ask Temporal again for TEMPORAL_REPROBE_SECONDS, then re-probes
it with one bounded health check, so a site that started (or ran into) an outage returns to Temporal by itself.

Everything else goes to the backend that recorded the job or schedule: a Temporal job is cancelled through
Temporal (RunnerUnavailable while it is down), never through pgboss. Recurring schedules are never moved to
pgboss (a copy would fire beside the Temporal Schedule once Temporal is back).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..ids import parse_uuid
from ..states import RunnerType
from ..workflows import Workflow, WorkflowResult
from .base import JobRunner, JobStatusInfo, ScheduleJobResult, UnservedQueue, load_job


class FallbackJobRunner(JobRunner):
    """Holds the two backends' runners (made by the factory: this layer imports no backend)."""

    def __init__(self, temporal: JobRunner, pgboss: JobRunner) -> None:
        self.temporal = temporal
        self.pgboss = pgboss
        temporal.on_unreachable = pgboss.take_over

    @classmethod
    def start(cls, temporal: JobRunner, pgboss: JobRunner) -> FallbackJobRunner:
        """The fallback over both runners, with Temporal probed once (bounded) so an outage at start-up is
        logged and shown at once."""
        runner = cls(temporal, pgboss)
        temporal.is_reachable()
        return runner

    # -- which backend ------------------------------------------------------------------------------------------

    @property  # type: ignore[override]
    def runner_type(self) -> RunnerType:
        """The backend new jobs go to now: pgboss while Temporal is unreachable."""
        return RunnerType.PGBOSS if self.fallback_active else RunnerType.TEMPORAL

    @property  # type: ignore[override]
    def fallback_active(self) -> bool:
        return self.temporal.unreachable_reason is not None

    @property  # type: ignore[override]
    def fallback_reason(self) -> str | None:
        return self.temporal.unreachable_reason

    def backend(self, runner_type: str) -> JobRunner:
        return self.temporal if runner_type == RunnerType.TEMPORAL else self.pgboss

    def _of_job(self, job_id: Any, tenant_id: Any) -> JobRunner | None:
        """The backend of this id: a schedule's or a job's, as recorded; None when neither exists."""
        from ..models import Schedule

        sid, tenant = parse_uuid(job_id), parse_uuid(tenant_id)
        if sid is None or tenant is None:
            return None
        schedule = Schedule.objects.filter(pk=sid, tenant=tenant).only("runner_type").first()
        if schedule is not None:
            return self.backend(schedule.runner_type)
        job = load_job(sid, tenant)
        return None if job is None else self.backend(job.runner_type)

    # -- scheduling: Temporal, handed to pgboss per job when it is unreachable -------------------------------

    def schedule_job(self, job_name: str, data: dict[str, Any], **options: Any) -> ScheduleJobResult:
        return self.temporal.schedule_job(job_name, data, **options)

    async def aschedule_job(self, job_name: str, data: dict[str, Any], **options: Any) -> ScheduleJobResult:
        return await self.temporal.aschedule_job(job_name, data, **options)

    def schedule_job_at(
        self, job_name: str, data: dict[str, Any], run_at: datetime, **options: Any
    ) -> ScheduleJobResult:
        return self.temporal.schedule_job_at(job_name, data, run_at, **options)

    async def aschedule_job_at(
        self, job_name: str, data: dict[str, Any], run_at: datetime, **options: Any
    ) -> ScheduleJobResult:
        return await self.temporal.aschedule_job_at(job_name, data, run_at, **options)

    def schedule_recurring_job(
        self, job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
    ) -> ScheduleJobResult:
        return self.temporal.schedule_recurring_job(job_name, data, cron, **options)

    async def aschedule_recurring_job(
        self, job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
    ) -> ScheduleJobResult:
        return await self.temporal.aschedule_recurring_job(job_name, data, cron, **options)

    # -- everything else: the backend that recorded it ------------------------------------------------------

    def get_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
        backend = self._of_job(job_id, tenant_id)
        return None if backend is None else backend.get_job_status(job_id, tenant_id)

    def cancel_job(self, job_id: Any, tenant_id: Any, **options: Any) -> bool:
        """Cancel through the job's (or schedule's) own backend; RunnerUnavailable for a Temporal one while
        Temporal is unreachable, before anything is written."""
        backend = self._of_job(job_id, tenant_id)
        if backend is None:
            return False
        return backend.ensure_reachable().cancel_job(job_id, tenant_id, **options)

    def set_schedule_paused(self, schedule_id: Any, tenant_id: Any, paused: bool) -> bool:
        backend = self._of_job(schedule_id, tenant_id)
        if backend is None:
            return False
        return backend.ensure_reachable().set_schedule_paused(schedule_id, tenant_id, paused)

    def trigger_schedule(self, schedule_id: Any, tenant_id: Any) -> ScheduleJobResult | None:
        """Run-now through the schedule's backend (a Temporal schedule's run is handed to pgboss like any job
        Temporal cannot be reached to start)."""
        backend = self._of_job(schedule_id, tenant_id)
        return None if backend is None else backend.trigger_schedule(schedule_id, tenant_id)

    def _schedule_run_now(self, schedule: Any) -> ScheduleJobResult:
        return self.backend(schedule.runner_type)._schedule_run_now(schedule)

    # -- workflows: on Temporal (a workflow is not handed to pgboss step by step), then by the recorded backend --

    def schedule_workflow(self, workflow: Workflow) -> WorkflowResult:
        return self.temporal.schedule_workflow(workflow)

    def cancel_workflow(self, workflow_id: Any, tenant_id: Any) -> bool:
        return self._of_workflow(workflow_id, tenant_id).cancel_workflow(workflow_id, tenant_id)

    def _retry_workflow_step(self, job: Any) -> ScheduleJobResult:
        return self.backend(job.runner_type)._retry_workflow_step(job)

    def _of_workflow(self, workflow_id: Any, tenant_id: Any) -> JobRunner:
        from ..models import Workflow as WorkflowRow

        wid, tenant = parse_uuid(workflow_id), parse_uuid(tenant_id)
        row = WorkflowRow.objects.filter(pk=wid, tenant=tenant).first() if wid and tenant else None
        return self.backend(row.runner_type) if row is not None else self.temporal

    def is_reachable(self) -> bool:
        """Temporal answers, or (while jobs fall back to it) pgboss does: a degraded site still runs its jobs,
        and `fallback_active` says it is degraded."""
        return self.temporal.is_reachable() or self.pgboss.is_reachable()

    def unserved_queues(self) -> list[UnservedQueue]:
        """Temporal's task queue when nobody polls it, and job names of fallen-back jobs no pgboss worker serves."""
        return [*self.temporal.unserved_queues(), *self.pgboss.unserved_queues()]

    def close(self) -> None:
        self.temporal.close()
        self.pgboss.close()
