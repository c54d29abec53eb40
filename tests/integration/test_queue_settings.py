"""Live queue settings: pause and resume through the runner API, applied by real workers without a restart."""

import time

import pytest
from asgiref.sync import async_to_sync

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import InvalidQueue
from jobscheduler.models import Job, JobDetail, Queue, QueueJob
from jobscheduler.registry import JobHandlerRegistry
from tests.support.processes import FAST_SETTINGS, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

POLL = FAST_SETTINGS["POLL_INTERVAL_SECONDS"]


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


def statuses(ids) -> list[str]:
    return sorted(Job.objects.filter(job_id__in=ids).values_list("status", flat=True))


def starts(ids) -> int:
    return JobDetail.objects.filter(job_id__in=ids, step_name="execution_started").count()


def test_pause_and_resume_are_recorded_and_listed(runner):
    JobHandlerRegistry.register("q.mail", lambda job_id, data: None, queue="emails")
    assert runner.get_queue("emails").paused is False
    assert not Queue.objects.exists()  # reading makes no row
    paused = runner.pause_queue("emails")
    assert paused.paused and paused.name == "emails" and paused.updated_at is not None
    assert Queue.objects.get(name="emails").paused
    assert [(q.name, q.paused) for q in runner.list_queues()] == [("default", False), ("emails", True)]
    assert runner.resume_queue("emails").paused is False
    assert async_to_sync(runner.apause_queue)("emails").paused
    assert async_to_sync(runner.aget_queue)("emails").paused
    assert async_to_sync(runner.aresume_queue)("emails").paused is False
    assert [q.name for q in async_to_sync(runner.alist_queues)()] == ["default", "emails"]


def test_a_bad_queue_name_is_refused_by_every_queue_call(runner):
    for call in (runner.pause_queue, runner.resume_queue, runner.get_queue):
        with pytest.raises(InvalidQueue) as err:
            call("no spaces")
        assert str(err.value) == (
            "Invalid queue name: 'no spaces' (1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit)"
        )
    assert not Queue.objects.exists()


def test_a_paused_queue_starts_nothing_while_others_run_then_resumes(runner, start_worker, tenant):
    start_worker("--concurrency", "4")
    runner.pause_queue("held")
    held = [r.job_id for r in runner.schedule_jobs("t.noop", [{}] * 5, tenant_id=tenant, queue="held")]
    free = [r.job_id for r in runner.schedule_jobs("t.noop", [{}] * 5, tenant_id=tenant)]
    wait_for(lambda: statuses(free) == ["completed"] * 5, message="the default queue to run")
    time.sleep(5 * POLL)  # several polls and NOTIFY wake-ups of the worker
    assert statuses(held) == ["queued"] * 5 and starts(held) == 0
    assert QueueJob.objects.filter(job_id__in=held, lease_token__isnull=True).count() == 5
    runner.resume_queue("held")
    wait_for(lambda: statuses(held) == ["completed"] * 5, timeout=10, message="the resumed queue to run")


def test_pausing_lets_running_jobs_finish_and_starts_nothing_after_it_returns(runner, start_worker, tenant):
    start_worker("--concurrency", "2")
    ids = [
        r.job_id for r in runner.schedule_jobs("t.sleep", [{"seconds": 1.0}] * 6, tenant_id=tenant, queue="q")
    ]
    wait_for(lambda: starts(ids) == 2, message="two jobs to start")
    runner.pause_queue("q")
    started_before = starts(ids)
    wait_for(lambda: statuses(ids).count("completed") == started_before, timeout=10, message="running jobs")
    time.sleep(5 * POLL)
    assert starts(ids) == started_before, "a job of the paused queue started after pause_queue returned"
    assert statuses(ids).count("queued") == 6 - started_before
    runner.resume_queue("q")
    wait_for(lambda: statuses(ids) == ["completed"] * 6, timeout=20, message="the rest after resume")


def test_the_command_line_lists_pauses_and_resumes(runner):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("jobqueues", "pause", "emails", stdout=out)
    assert out.getvalue() == "emails: paused\n" and runner.get_queue("emails").paused
    out = io.StringIO()
    call_command("jobqueues", "list", stdout=out)
    assert "emails: paused\n" in out.getvalue() and "default: running\n" in out.getvalue()
    call_command("jobqueues", "resume", "emails", stdout=io.StringIO())
    assert not runner.get_queue("emails").paused
    with pytest.raises(CommandError) as err:
        call_command("jobqueues", "pause", "a:b")
    assert str(err.value).startswith("Invalid queue name: 'a:b'")
