"""Recurring jobs on the Temporal backend: a Temporal Schedule, mirrored in the schedules table."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from jobscheduler.exceptions import InvalidSchedule
from jobscheduler.models import Job, Schedule, ScheduleRun
from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.temporal.runner import temporal_cron

from .conftest import wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def schedules(runner, tenant):
    """Schedules made by a test are deleted after it, so they never fire into another test."""
    made = []
    yield made
    for schedule_id in made:
        runner.cancel_job(schedule_id, tenant)


async def _describe(runner, temporal_id):
    client = await runner._client_ready()
    return await client.get_schedule_handle(temporal_id).describe()


def _runs(job_name):
    return list(Job.objects.filter(type=job_name).order_by("created_at"))


def _completed(job_name):
    return [j for j in _runs(job_name) if j.status == "completed"]


def test_each_tick_is_its_own_recorded_job(runner, schedules, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: data["n"])
    data = {"tenantId": str(tenant), "n": 1}

    result = runner.schedule_recurring_job(job_name, data, timedelta(seconds=1), metadata={"team": "ops"})
    schedules.append(result.job_id)

    row = Schedule.objects.get(id=result.job_id)
    assert (row.runner_type, row.external_id, row.key) == (
        "temporal",
        result.external_id,
        f"{job_name}:{tenant}",
    )
    assert row.interval_seconds == 1 and row.next_run_at is not None
    runs = wait_until(lambda: _completed(job_name) if len(_completed(job_name)) >= 2 else None, timeout=15)
    for job in runs:
        assert job.runner_type == "temporal" and job.external_id.startswith(f"{result.external_id}:run")
        assert job.meta["scheduleId"] == result.job_id and job.meta["scheduleKey"] == row.key
        assert job.meta["team"] == "ops" and job.meta["data"] == data and job.meta["tick"]
    assert len({j.job_id for j in runs}) == len(runs)
    assert ScheduleRun.objects.filter(schedule_id=result.job_id).count() >= 2
    assert Schedule.objects.get(id=result.job_id).last_job_id is not None


def test_a_second_call_updates_the_schedule_by_key(runner, schedules, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    first = runner.schedule_recurring_job(
        job_name, {"tenantId": str(tenant)}, "0 3 * * *", timezone="Europe/Berlin"
    )
    schedules.append(first.job_id)

    second = runner.schedule_recurring_job(
        job_name, {"tenantId": str(tenant), "v": 2}, "30 */5 * * * *", timezone="Europe/Berlin"
    )

    assert second == first
    assert Schedule.objects.filter(tenant=tenant).count() == 1
    row = Schedule.objects.get(id=first.job_id)
    assert row.cron == "30 */5 * * * *" and row.data["v"] == 2 and row.timezone == "Europe/Berlin"
    desc = runner._rpc(_describe(runner, first.external_id))
    assert desc.schedule.spec.time_zone_name == "Europe/Berlin"
    assert json.loads(desc.schedule.action.args[0].data)["data"]["v"] == 2
    assert all(t.second == 30 and t.minute % 5 == 0 for t in desc.info.next_action_times)


def test_pause_trigger_and_delete(runner, schedules, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: "manual")
    result = runner.schedule_recurring_job(job_name, {"tenantId": str(tenant)}, "0 0 1 1 *")
    schedules.append(result.job_id)

    assert runner.set_schedule_paused(result.job_id, tenant, True) is True
    assert runner._rpc(_describe(runner, result.external_id)).schedule.state.paused
    assert Schedule.objects.get(id=result.job_id).paused
    assert runner.set_schedule_paused(result.job_id, tenant, False) is True
    assert not runner._rpc(_describe(runner, result.external_id)).schedule.state.paused

    triggered = runner.trigger_schedule(result.job_id, tenant)
    job = wait_for_status(triggered.job_id, "completed")
    assert job.meta["scheduleId"] == result.job_id and job.meta["triggeredManually"] is True
    assert str(Schedule.objects.get(id=result.job_id).last_job_id) == triggered.job_id

    assert runner.cancel_job(result.job_id, tenant) is True
    assert not Schedule.objects.filter(id=result.job_id).exists()
    with pytest.raises(Exception, match="not found"):
        runner._rpc(_describe(runner, result.external_id))
    assert runner.set_schedule_paused(result.job_id, tenant, True) is False
    assert runner.trigger_schedule(result.job_id, tenant) is None


def test_paused_schedules_do_not_fire(runner, schedules, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    result = runner.schedule_recurring_job(job_name, {"tenantId": str(tenant)}, timedelta(seconds=1))
    schedules.append(result.job_id)
    runner.set_schedule_paused(result.job_id, tenant, True)
    fired = len(_runs(job_name))
    time.sleep(2.5)
    assert len(_runs(job_name)) <= fired + 1  # at most a run already in flight when the pause landed


def test_invalid_schedules_write_nothing(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    with pytest.raises(InvalidSchedule):
        runner.schedule_recurring_job(job_name, {"tenantId": str(tenant)}, "61 * * * *")
    with pytest.raises(InvalidSchedule, match="Invalid timezone"):
        runner.schedule_recurring_job(job_name, {"tenantId": str(tenant)}, "* * * * *", timezone="Mars/Base")
    assert not Schedule.objects.exists()


def test_cron_translation_for_temporal():
    assert temporal_cron("0 3 * * *") == "0 3 * * *"
    assert temporal_cron("30 */5 * * * *") == "30 */5 * * * * *"
