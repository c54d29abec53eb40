"""jobscheduler.testing: capture what code scheduled, run it in-process, in pytest and in Django's TestCase."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import TestCase, override_settings
from django.utils import timezone

from jobscheduler import JobRunnerFactory, schedule_job, schedule_job_at
from jobscheduler.models import Job, JobDetail, QueueJob
from jobscheduler.pytest_plugin import scheduled_jobs  # noqa: F401  (the fixture, as the plugin gives it)
from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.tasks import TaskResultStatus
from jobscheduler.testing import JobsTestMixin, RunawayJobs, capture_jobs, run_jobs
from tests.support import tasks

TASKS = {
    "default": {
        "BACKEND": "jobscheduler.tasks.JobSchedulerBackend",
        "OPTIONS": {"TENANT_ID": "6a1d1b7e-0000-4000-8000-0000000000e5"},
    }
}


def steps(job_id) -> list[str]:
    return list(
        JobDetail.objects.filter(job_id=job_id).order_by("processed_at").values_list("step_name", flat=True)
    )


def sign_up(tenant, email: str) -> None:
    """Code under test: it schedules a job and knows nothing of the helpers."""
    schedule_job("t.progress", {"tenantId": str(tenant), "email": email}, metadata={"source": "signup"})


def test_capture_sees_what_was_scheduled_without_running_it(scheduled_jobs, tenant):  # noqa: F811
    sign_up(tenant, "ada@example.com")

    assert scheduled_jobs.names() == ["t.progress"]
    [job] = scheduled_jobs
    assert job.data == {"tenantId": str(tenant), "email": "ada@example.com"}
    assert job.tenant == tenant and job.status == "queued" and job.attempts == 0
    assert job.metadata == {"source": "signup"} and job.run_at is not None
    assert steps(job.job_id) == []  # nothing ran

    [done] = scheduled_jobs.run()
    assert done.status == "completed" and done.metadata["progress"] == 100
    assert steps(job.job_id) == ["execution_started", "load", "execution_completed"]
    assert done.metadata["workerId"] == "jobscheduler.testing"
    assert not QueueJob.objects.filter(job_id=job.job_id).exists()


def test_retries_run_at_once_until_the_policy_says_stop(db, tenant):
    with capture_jobs():
        flaky = schedule_job("t.flaky", {"tenantId": str(tenant), "succeed_on": 3})
        failing = schedule_job("t.fail", {"tenantId": str(tenant)})
    ran = {str(j.job_id): j for j in run_jobs()}
    assert ran[flaky.job_id].status == "completed" and ran[flaky.job_id].metadata["attempts"] == 3
    assert steps(flaky.job_id).count("execution_retry_scheduled") == 2
    assert ran[failing.job_id].status == "failed" and ran[failing.job_id].metadata["attempts"] == 3
    assert ran[failing.job_id].metadata["error"] == "RuntimeError: attempt 3 failed"


def test_delayed_jobs_run_when_until_reaches_them(db, tenant):
    with capture_jobs() as captured:
        later = schedule_job_at("t.noop", {"tenantId": str(tenant)}, timezone.now() + timedelta(hours=1))
    assert run_jobs() == []
    assert captured[0].status == "queued"
    [done] = run_jobs(until=timezone.now() + timedelta(hours=2))
    assert str(done.job_id) == later.job_id and done.status == "completed"


def test_jobs_scheduled_by_handlers_run_too_and_names_filter(db, tenant):
    def parent(job_id, data):
        schedule_job("t.echo", {"tenantId": data["tenantId"], "from": job_id})

    JobHandlerRegistry.register("t.parent", parent)
    with capture_jobs() as captured:
        schedule_job("t.parent", {"tenantId": str(tenant)})
        schedule_job("t.noop", {"tenantId": str(tenant)})
    assert [j.type for j in run_jobs(names=["t.parent", "t.echo"])] == ["t.parent", "t.echo"]
    assert [j.status for j in captured] == ["completed", "queued"]  # the capture ended before the child
    child = Job.objects.get(type="t.echo")
    assert child.metadata["data"]["from"] == captured[0].job_id and child.status == "completed"


def test_a_job_that_keeps_scheduling_itself_stops_the_run(db, tenant):
    JobHandlerRegistry.register("t.again", lambda job_id, data: schedule_job("t.again", data))
    schedule_job("t.again", {"tenantId": str(tenant)})
    with pytest.raises(RunawayJobs) as runaway:
        run_jobs(max_attempts=5)
    assert str(runaway.value) == (
        "run_jobs made 5 attempts and jobs are still due: a job keeps scheduling more "
        "(pass max_attempts=... if that many are expected)"
    )


def test_tasks_run_through_the_helpers(db, settings):
    settings.TASKS = TASKS
    with capture_jobs() as captured:
        summed = tasks.add.enqueue(2, 3)
        doubled = tasks.async_double.enqueue(4)
    assert captured.names() == ["tests.support.tasks.add", "tests.support.tasks.async_double"]
    run_jobs()
    summed.refresh()
    doubled.refresh()
    assert (summed.status, summed.return_value) == (TaskResultStatus.SUCCESSFUL, 5)
    assert (doubled.status, doubled.return_value) == (TaskResultStatus.SUCCESSFUL, 8)
    assert summed.worker_ids == ["jobscheduler.testing"]


@override_settings(JOB_RUNNER_TYPE="temporal", TEMPORAL_ADDRESS="127.0.0.1:1")
class SignupTests(JobsTestMixin, TestCase):
    """A TestCase of a site configured for Temporal: its jobs still land in the test database and run here."""

    def test_signup_schedules_the_welcome_email(self):
        tenant = "6a1d1b7e-0000-4000-8000-0000000000e6"
        with self.capture_jobs() as captured:
            sign_up(tenant, "grace@example.com")
        self.assertEqual(JobRunnerFactory.get_instance().runner_type, "pgboss")
        job = self.assertJobScheduled(captured, "t.progress", email="grace@example.com")
        self.assertEqual(job.metadata, {"source": "signup"})
        [done] = self.run_jobs()
        self.assertEqual(done.status, "completed")
        self.assertEqual(steps(job.job_id), ["execution_started", "load", "execution_completed"])

    def test_assert_job_scheduled_fails_when_nothing_matches(self):
        tenant = "6a1d1b7e-0000-4000-8000-0000000000e7"
        with self.capture_jobs() as captured:
            sign_up(tenant, "grace@example.com")
        with self.assertRaises(AssertionError) as failed:
            self.assertJobScheduled(captured, "t.progress", email="someone@else.org")
        self.assertEqual(
            str(failed.exception),
            "expected one 't.progress' job with data {'email': 'someone@else.org'}, found 0 among ['t.progress']",
        )
