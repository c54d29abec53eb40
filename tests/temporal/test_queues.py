"""Queues on Temporal: each queue is a task queue of its own, served by the workers that name it; pause, rate
limit and a worker's own slots per queue, as far as Temporal allows (see docs/temporal.md)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync

from jobscheduler.models import Job, JobDetail
from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.temporal.task_queues import task_queue_for

from .conftest import InProcessWorker, wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def serve(temporal_address, task_queue, settings):
    """Start an extra in-process worker serving the queues given; every one is stopped at the end."""
    settings.JOBSCHEDULER = {**settings.JOBSCHEDULER, "POLL_INTERVAL_SECONDS": 0.3}
    started: list[InProcessWorker] = []

    def start(queues: dict[str, int | None]) -> InProcessWorker:
        worker = InProcessWorker(temporal_address, task_queue, concurrency=4, queues=queues)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def started_count(ids) -> int:
    return JobDetail.objects.filter(job_id__in=ids, step_name="execution_started").count()


def test_a_job_runs_on_its_queue_task_queue_and_records_its_queue(
    runner, job_name, tenant, serve, task_queue
):
    JobHandlerRegistry.register(job_name, lambda job_id, data: "sent", queue="emails")
    serve({"emails": None})
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    job = wait_for_status(result.job_id, "completed")
    assert job.meta["queue"] == "emails"
    description = async_to_sync(_describe)(runner, job.external_id)
    assert description.task_queue == task_queue_for(task_queue, "emails") == f"{task_queue}.emails"
    default = runner.schedule_job(job_name, {"tenantId": str(tenant)}, queue="default")
    assert wait_for_status(default.job_id, "completed").meta["queue"] == "default"


async def _describe(runner, workflow_id):
    client = await runner._client_ready()
    return await client.get_workflow_handle(workflow_id).describe()


def test_a_paused_queue_starts_nothing_on_temporal_workers_then_resumes(runner, job_name, tenant, serve):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None, queue="held")
    serve({"held": None})
    runner.pause_queue("held")
    time.sleep(
        1.5
    )  # the workers' next look at the queues' settings (every 0.3 s here) stops the queue's worker
    ids = [runner.schedule_job(job_name, {"tenantId": str(tenant)}).job_id for _ in range(3)]
    time.sleep(3)
    assert started_count(ids) == 0
    assert set(Job.objects.filter(job_id__in=ids).values_list("status", flat=True)) == {"queued"}
    runner.resume_queue("held")
    for job_id in ids:
        wait_for_status(job_id, "completed", timeout=30)


def test_a_worker_gives_a_queue_no_more_than_its_own_slots(runner, job_name, tenant, serve):
    spans: list[tuple[float, float]] = []

    def slow(job_id, data):
        started = time.monotonic()
        time.sleep(0.5)
        spans.append((started, time.monotonic()))

    JobHandlerRegistry.register(job_name, slow, queue="one-at-a-time")
    serve({"one-at-a-time": 1})
    ids = [runner.schedule_job(job_name, {"tenantId": str(tenant)}).job_id for _ in range(3)]
    for job_id in ids:
        wait_for_status(job_id, "completed", timeout=30)
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans


def test_the_rate_limit_becomes_the_task_queue_rate_limit(runner, job_name, tenant, serve):
    """Temporal's own task-queue rate limit, set from the queue's live settings (and reset when they change)."""
    starts: list[float] = []
    JobHandlerRegistry.register(
        job_name, lambda job_id, data: starts.append(time.monotonic()), queue="metered"
    )
    runner.set_queue_limits("metered", rate_limit="2/s")
    worker = serve({"metered": None})
    wait_until(
        lambda: worker.workers._running.get("metered") and worker.workers._running["metered"].rate == 2.0
    )
    ids = [runner.schedule_job(job_name, {"tenantId": str(tenant)}).job_id for _ in range(8)]
    for job_id in ids:
        wait_for_status(job_id, "completed", timeout=60)
    took = max(starts) - min(starts)
    print(f"temporal rate limit 2/s: 8 starts in {took:.2f}s")
    assert took >= 2.0, took  # unlimited, eight no-op jobs start within a fraction of a second
    runner.set_queue_limits("metered", rate_limit=None)
    wait_until(
        lambda: worker.workers._running.get("metered") and worker.workers._running["metered"].rate is None
    )


def test_schedules_start_their_runs_on_the_queue_task_queue(runner, job_name, tenant, serve):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None, queue="ticks")
    serve({"ticks": None})
    schedule = runner.schedule_recurring_job(job_name, {"tenantId": str(tenant)}, timedelta(seconds=1))
    try:
        run = wait_until(
            lambda: Job.objects.filter(metadata__scheduleId=schedule.job_id, status="completed").first(),
            timeout=30,
        )
        assert run.meta["queue"] == "ticks"
    finally:
        runner.cancel_job(schedule.job_id, tenant)


def test_unique_and_throttle_hold_on_temporal_and_debounce_is_refused(runner, job_name, tenant):
    from jobscheduler import Debounce, Throttle, Unique
    from jobscheduler.exceptions import InvalidJobData

    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    policy = Throttle(f"{job_name}:t", period=timedelta(minutes=5))
    first = runner.schedule_job(job_name, {"tenantId": str(tenant)}, unique=policy)
    wait_for_status(first.job_id, "completed")
    again = runner.schedule_job(job_name, {"tenantId": str(tenant)}, unique=policy)
    assert (again.job_id, again.external_id) == (first.job_id, f"job-{first.job_id}")
    live_only = Unique(f"{job_name}:u")
    one = runner.schedule_job(job_name, {"tenantId": str(tenant)}, unique=live_only)
    wait_for_status(one.job_id, "completed")
    after = runner.schedule_job(job_name, {"tenantId": str(tenant)}, unique=live_only)
    assert after.job_id != one.job_id
    # Let it finish: a run still writing its record when the test ends deadlocks with the database flush.
    wait_for_status(after.job_id, "completed")
    with pytest.raises(InvalidJobData) as err:
        runner.schedule_job(job_name, {"tenantId": str(tenant)}, unique=Debounce("d", timedelta(seconds=1)))
    assert str(err.value) == (
        "Debounce needs the pgboss backend: a Temporal workflow's data cannot be replaced once it is started "
        "(use Throttle or Unique)"
    )
    assert Job.objects.filter(type=job_name).count() == 3
