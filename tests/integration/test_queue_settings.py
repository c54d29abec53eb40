"""Live queue settings: pause and resume through the runner API, applied by real workers without a restart."""

import time

import pytest
from asgiref.sync import async_to_sync

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import InvalidQueue
from jobscheduler.models import Job, JobDetail, Queue, QueueJob
from jobscheduler.registry import JobHandlerRegistry
from tests.acceptance.support import query
from tests.support.processes import FAST_SETTINGS, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

POLL = FAST_SETTINGS["POLL_INTERVAL_SECONDS"]


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


@pytest.fixture
def ledger():
    """Rows the t.slot handler writes, one per execution (start and end), on its own connection."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS test_ledger (job_id uuid, attempt int, pid int, started float8, finished float8)"
        )
        cur.execute("TRUNCATE test_ledger")
    return lambda: query("SELECT job_id, attempt, pid, started, finished FROM test_ledger")


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


def test_limits_change_live_and_none_removes_one(runner):
    state = runner.set_queue_limits("emails", concurrency=2)
    assert (state.concurrency, state.is_limited) == (2, True)
    assert runner.set_queue_limits("emails").concurrency == 2  # nothing named: unchanged
    assert runner.pause_queue("emails").concurrency == 2
    state = runner.set_queue_limits("emails", concurrency=None)
    assert (state.concurrency, state.is_limited, state.paused) == (None, False, True)
    assert async_to_sync(runner.aset_queue_limits)("emails", concurrency=5).concurrency == 5
    state = runner.set_queue_limits("emails", tenant_concurrency=1)
    assert (state.concurrency, state.tenant_concurrency) == (5, 1)
    state = runner.set_queue_limits("emails", concurrency=None)
    assert (state.concurrency, state.tenant_concurrency, state.is_limited) == (None, 1, True)


@pytest.mark.parametrize("limit", ["concurrency", "tenant_concurrency"])
@pytest.mark.parametrize("value", [0, -1, "3", True, 1.5, 2**31])
def test_a_bad_limit_is_refused_and_nothing_changes(runner, limit, value):
    runner.set_queue_limits("emails", concurrency=4, tenant_concurrency=2)
    with pytest.raises(InvalidQueue) as err:
        runner.set_queue_limits("emails", **{limit: value})
    assert str(err.value) == f"{limit} must be a positive integer or None, got {value!r}"
    state = runner.get_queue("emails")
    assert (state.concurrency, state.tenant_concurrency) == (4, 2)


def test_settings_seed_a_queue_and_the_live_values_win_until_reset(runner, settings):
    from jobscheduler.queues import seed_from_settings

    settings.JOBSCHEDULER = {**settings.JOBSCHEDULER, "QUEUES": {"emails": {"concurrency": 2}}}
    assert runner.get_queue("emails").concurrency == 2  # before any row: the settings
    assert "emails" in [q.name for q in runner.list_queues()]
    assert seed_from_settings() == 1 and Queue.objects.get(name="emails").concurrency == 2
    assert seed_from_settings() == 0
    runner.set_queue_limits("emails", concurrency=7)
    settings.JOBSCHEDULER = {
        **settings.JOBSCHEDULER,
        "QUEUES": {"emails": {"concurrency": 3, "rate_limit": "2/s", "tenant_concurrency": 1}},
    }
    assert seed_from_settings() == 0 and runner.get_queue("emails").concurrency == 7  # the live value wins
    runner.pause_queue("emails")
    state = runner.reset_queue("emails")
    assert (state.concurrency, state.tenant_concurrency, str(state.rate_limit), state.paused) == (
        3,
        1,
        "2/s",
        False,
    )


@pytest.mark.parametrize(
    "queues, message",
    [
        ([], 'JOBSCHEDULER["QUEUES"] must be a dict of queue name to settings, got []'),
        ({"a b": {}}, "JOBSCHEDULER[\"QUEUES\"]['a b']: Invalid queue name: 'a b' (1-100 letters, digits, '_', "
         "'-' or '.', starting with a letter or digit)"),
        ({"emails": 3}, "JOBSCHEDULER[\"QUEUES\"]['emails']: must be a dict, got 3"),
        ({"emails": {"concurency": 3}}, "JOBSCHEDULER[\"QUEUES\"]['emails']: unknown key(s) concurency (known: "
         "concurrency, tenant_concurrency, rate_limit, paused)"),
        ({"emails": {"concurrency": 0}}, "JOBSCHEDULER[\"QUEUES\"]['emails']: concurrency must be a positive "
         "integer or None, got 0"),
        ({"emails": {"paused": "yes"}}, "JOBSCHEDULER[\"QUEUES\"]['emails']: paused must be True or False, got "
         "'yes'"),
    ],
)  # fmt: skip
def test_bad_queue_settings_are_refused_with_what_is_wrong(runner, settings, queues, message):
    from django.core.exceptions import ImproperlyConfigured

    settings.JOBSCHEDULER = {**settings.JOBSCHEDULER, "QUEUES": queues}
    with pytest.raises(ImproperlyConfigured) as err:
        runner.list_queues()
    assert str(err.value) == message


def test_the_command_line_changes_and_resets_limits(runner):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("jobqueues", "limits", "emails", "--concurrency", "3", stdout=out)
    assert out.getvalue() == "emails: running, concurrency 3\n"
    out = io.StringIO()
    call_command(
        "jobqueues", "limits", "emails", "--tenant-concurrency", "1", "--rate-limit", "5/m", stdout=out
    )
    assert out.getvalue() == "emails: running, concurrency 3, per tenant 1, rate 5/m\n"
    call_command("jobqueues", "limits", "emails", "--rate-limit", "none", stdout=io.StringIO())
    call_command("jobqueues", "limits", "emails", "--concurrency", "none", stdout=io.StringIO())
    state = runner.get_queue("emails")
    assert (state.concurrency, state.tenant_concurrency) == (None, 1)
    with pytest.raises(CommandError) as err:
        call_command("jobqueues", "limits", "emails", "--concurrency", "0")
    assert str(err.value) == "concurrency must be a positive integer or None, got 0"
    runner.set_queue_limits("emails", concurrency=9, tenant_concurrency=None)
    out = io.StringIO()
    call_command("jobqueues", "reset", "emails", stdout=out)
    assert out.getvalue() == "emails: running\n"


def test_a_limit_set_while_a_worker_drains_an_unlimited_queue_holds_once_the_call_returns(
    runner, start_worker, tenant, ledger
):
    """A worker that found no limited queue claims with the statement that leaves limits out; a limit set while
    it runs is kept from the moment set_queue_limits returns (it checks again in the claim's own snapshot)."""
    start_worker("--concurrency", "6")
    ids = [
        r.job_id
        for r in runner.schedule_jobs("t.slot", [{"seconds": 0.3}] * 30, tenant_id=tenant, queue="late")
    ]
    wait_for(lambda: starts(ids) >= 6, message="the unlimited queue to run six at a time")
    runner.set_queue_limits("late", concurrency=2)
    limited_at = time.time()
    wait_for(lambda: statuses(ids) == ["completed"] * 30, timeout=30, message="the rest, two at a time")
    spans = [(r[3], r[4]) for r in ledger()]
    assert max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans if t < limited_at) > 2
    later = [a for a, _ in spans if a >= limited_at]
    assert later, "jobs should have started after the limit was set"
    # The jobs running when the call returned end within 0.3 s; from then on at most two run at once.
    for t in later:
        if t > limited_at + 0.3 + POLL:
            assert sum(1 for a, b in spans if a <= t < b) <= 2, f"more than two ran at {t - limited_at:.2f} s"


def test_a_limited_queue_wakes_its_workers_when_a_slot_frees(runner, start_worker, tenant):
    """With polling all but off, a one-at-a-time queue still drains promptly: each end of one of its jobs
    NOTIFYs the workers that a slot is free."""
    runner.set_queue_limits("serial", concurrency=1)
    start_worker("--concurrency", "4", settings={"POLL_INTERVAL_SECONDS": 30})
    start_worker("--concurrency", "4", settings={"POLL_INTERVAL_SECONDS": 30})
    time.sleep(0.5)  # both idle, waiting on LISTEN
    started = time.monotonic()
    ids = [r.job_id for r in runner.schedule_jobs("t.noop", [{}] * 20, tenant_id=tenant, queue="serial")]
    wait_for(lambda: statuses(ids) == ["completed"] * 20, timeout=20, message="the serial queue to drain")
    assert time.monotonic() - started < 15
    assert starts(ids) == 20  # each once


def test_a_rate_limited_queue_wakes_its_worker_when_its_window_frees(runner, start_worker, tenant):
    """Nothing else wakes a worker whose queue is out of starts (no job ends, nothing is enqueued): the claim
    tells it when the window frees a start. With polling all but off, a 4/s queue still drains at its rate."""
    runner.set_queue_limits("metered", rate_limit="4/s")
    start_worker("--concurrency", "8", settings={"POLL_INTERVAL_SECONDS": 30})
    time.sleep(0.5)
    started = time.monotonic()
    ids = [r.job_id for r in runner.schedule_jobs("t.noop", [{}] * 12, tenant_id=tenant, queue="metered")]
    wait_for(lambda: statuses(ids) == ["completed"] * 12, timeout=20, message="the metered queue to drain")
    took = time.monotonic() - started
    assert 1.8 < took < 8, took  # 4 at once, then 8 more at 4/s: about 2.1 s


def test_rate_limits_are_spelled_and_changed_like_the_other_limits(runner):
    from jobscheduler.queues import RateLimit

    state = runner.set_queue_limits("emails", rate_limit="10/s")
    assert state.rate_limit == RateLimit(10, 1.0) and str(state.rate_limit) == "10/s" and state.is_limited
    assert Queue.objects.get(name="emails").rate_period_seconds == 1.0
    with pytest.raises(InvalidQueue):
        runner.set_queue_limits("emails", rate_limit="fast")
    assert runner.get_queue("emails").rate_limit == RateLimit(10, 1.0)
    assert runner.set_queue_limits("emails", rate_limit=None).rate_limit is None


def test_a_worker_serves_only_the_queues_it_names(runner, start_worker, tenant):
    from jobscheduler.models import Worker

    worker = start_worker("--queues", "emails,reports")
    assert "queues: emails, reports," in worker.output()
    served = [
        r.job_id
        for q in ("emails", "reports")
        for r in runner.schedule_jobs("t.noop", [{}] * 3, tenant_id=tenant, queue=q)
    ]
    other = [r.job_id for r in runner.schedule_jobs("t.noop", [{}] * 3, tenant_id=tenant)]
    wait_for(lambda: statuses(served) == ["completed"] * 6, message="the served queues")
    time.sleep(5 * POLL)
    assert statuses(other) == ["queued"] * 3 and starts(other) == 0
    assert Worker.objects.get(pid=worker.pid).queues == ["emails", "reports"]


def test_a_worker_gives_a_capped_queue_no_more_than_its_own_slots(runner, start_worker, tenant, ledger):
    """`--queues emails:1,default` on four slots: one emails job at a time on this worker, the other slots
    busy with the default queue meanwhile."""
    start_worker("--concurrency", "4", "--queues", "emails:1,default")
    emails = [
        r.job_id
        for r in runner.schedule_jobs("t.slot", [{"seconds": 0.4}] * 4, tenant_id=tenant, queue="emails")
    ]
    other = [r.job_id for r in runner.schedule_jobs("t.slot", [{"seconds": 0.4}] * 6, tenant_id=tenant)]
    wait_for(lambda: statuses(emails + other) == ["completed"] * 10, timeout=30, message="both queues")
    rows = {str(r[0]): (r[3], r[4]) for r in ledger()}
    spans = sorted(rows[i] for i in emails)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "two emails jobs overlapped"
    assert any(rows[i][0] < spans[0][1] for i in other), "the default queue should use the other slots"


@pytest.mark.parametrize(
    "value, message",
    [
        ("a b", "--queues: Invalid queue name: 'a b' (1-100 letters, digits, '_', '-' or '.', starting with a "
         "letter or digit)"),
        ("emails:0", "--queues: The slots of queue 'emails' must be a positive integer, got '0'"),
        ("emails:x", "--queues: The slots of queue 'emails' must be a positive integer, got 'x'"),
        ("emails,emails:2", "--queues: Queue 'emails' is named twice in 'emails,emails:2'"),
        (" , ", "--queues: No queue named in ' , '"),
    ],
)  # fmt: skip
def test_a_bad_queues_option_is_refused(value, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError) as err:
        call_command("runjobworker", "--queues", value)
    assert str(err.value) == message
