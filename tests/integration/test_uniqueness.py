"""Unique jobs beyond the singleton: Unique (states, period), Throttle and Debounce, on pgboss, with a real worker
for what runs and threads for what races."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from jobscheduler import Debounce, JobRunnerFactory, Throttle, Unique
from jobscheduler.exceptions import InvalidJobData
from jobscheduler.models import Job, JobDetail, QueueJob
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


def finish(job_id, status="completed") -> None:
    with connection.cursor() as cur:
        cur.execute("UPDATE jobs SET status = %s::job_status WHERE job_id = %s", [status, job_id])
        cur.execute("DELETE FROM jobscheduler_queue WHERE job_id = %s", [job_id])


def age(job_id, by: timedelta) -> None:
    Job.objects.filter(job_id=job_id).update(created_at=timezone.now() - by)


def test_unique_among_live_jobs_by_default(runner, tenant, other_tenant):
    first = runner.schedule_job("t.echo", {"n": 1}, tenant_id=tenant, unique=Unique("report:42"))
    again = runner.schedule_job("t.echo", {"n": 2}, tenant_id=tenant, unique=Unique("report:42"))
    assert again.job_id == first.job_id and Job.objects.count() == 1
    assert Job.objects.get(job_id=first.job_id).meta["uniqueKey"] == "report:42"
    theirs = runner.schedule_job("t.echo", {}, tenant_id=other_tenant, unique=Unique("report:42"))
    assert theirs.job_id != first.job_id  # keys are per tenant
    finish(first.job_id)
    after = runner.schedule_job("t.echo", {"n": 3}, tenant_id=tenant, unique=Unique("report:42"))
    assert after.job_id != first.job_id


def test_unique_across_chosen_states_for_a_period(runner, tenant):
    once_an_hour = Unique("digest", states=("queued", "processing", "completed"), period=timedelta(hours=1))
    first = runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=once_an_hour)
    finish(first.job_id, "completed")
    assert runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=once_an_hour).job_id == first.job_id
    age(first.job_id, timedelta(hours=2))
    second = runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=once_an_hour)
    assert second.job_id != first.job_id
    finish(second.job_id, "failed")  # a failed one is not among the states: it does not count
    assert runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=once_an_hour).job_id != second.job_id


def test_throttle_allows_one_job_per_period_whatever_became_of_it(runner, tenant):
    policy = Throttle("sync:7", period=timedelta(minutes=5))
    first = runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=policy)
    finish(first.job_id, "failed")
    assert runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=policy).job_id == first.job_id
    age(first.job_id, timedelta(minutes=6))
    assert runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=policy).job_id != first.job_id


def test_debounce_keeps_one_waiting_job_with_the_last_data_and_a_later_run_time(runner, tenant):
    policy = Debounce("draft:9", window=timedelta(seconds=30))
    before = timezone.now()
    first = runner.schedule_job("t.echo", {"text": "a"}, tenant_id=tenant, unique=policy)
    run_at = QueueJob.objects.get(job_id=first.job_id).run_at
    assert before + timedelta(seconds=29) < run_at < timezone.now() + timedelta(seconds=31)
    time.sleep(0.3)
    for text in ("ab", "abc"):
        assert (
            runner.schedule_job("t.echo", {"text": text}, tenant_id=tenant, unique=policy).job_id
            == first.job_id
        )
    job = Job.objects.get(job_id=first.job_id)
    assert (job.meta["data"], job.meta["debounced"], Job.objects.count()) == ({"text": "abc"}, 2, 1)
    assert QueueJob.objects.get(job_id=first.job_id).run_at > run_at  # moved by the later calls
    with connection.cursor() as cur:  # a worker claims it: the next call starts a new burst
        cur.execute(
            "UPDATE jobscheduler_queue SET lease_token = gen_random_uuid() WHERE job_id = %s", [first.job_id]
        )
    assert (
        runner.schedule_job("t.echo", {"text": "b"}, tenant_id=tenant, unique=policy).job_id != first.job_id
    )


def test_debounce_never_moves_a_job_past_its_max_wait(runner, tenant):
    policy = Debounce("draft:10", window=timedelta(seconds=30), max_wait=timedelta(seconds=40))
    first = runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=policy)
    QueueJob.objects.filter(job_id=first.job_id).update(created_at=timezone.now() - timedelta(seconds=35))
    runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=policy)
    queued = QueueJob.objects.get(job_id=first.job_id)
    assert queued.run_at == queued.created_at + timedelta(seconds=40)


def test_a_debounced_job_runs_once_with_the_last_data(runner, start_worker, tenant):
    start_worker()
    policy = Debounce("draft:11", window=timedelta(seconds=1))
    ids = {runner.schedule_job("t.echo", {"n": n}, tenant_id=tenant, unique=policy).job_id for n in range(5)}
    assert len(ids) == 1
    (job_id,) = ids
    done = wait_for(lambda: Job.objects.filter(job_id=job_id, status="completed").first(), timeout=15)
    assert JobDetail.objects.get(job_id=job_id, step_name="execution_completed").result["result"] == {"n": 4}
    assert done.meta["debounced"] == 4 and Job.objects.count() == 1


def test_concurrent_calls_with_one_key_make_one_job(runner, tenant):
    """Eight threads (eight connections) at once: the (tenant, key) lock makes them act one after the other."""
    results: list[str] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        try:
            barrier.wait()
            results.append(
                runner.schedule_job(
                    "t.echo", {}, tenant_id=tenant, unique=Throttle("race", timedelta(minutes=1))
                ).job_id
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and len(set(results)) == 1
    assert Job.objects.filter(tenant=tenant).count() == 1


@pytest.mark.parametrize(
    "policy, options, message",
    [
        ("key", {}, "unique must be a Unique, Throttle or Debounce policy, got 'key'"),
        (Unique(""), {}, "The key of a Unique policy must be a non-empty string of at most 255 characters, got ''"),
        (Throttle("k", timedelta(0)), {}, "The period of a Throttle policy must be a positive timedelta, got "
         "datetime.timedelta(0)"),
        (Debounce("k", 5), {}, "The window of a Debounce policy must be a positive timedelta, got 5"),
        (Unique("k", states=("queued", "lost")), {}, "The states of a Unique policy must be a non-empty tuple of "
         "pending, processing, completed, failed, active, queued, cancelled, got ('queued', 'lost')"),
        (Unique("k"), {"singleton_key": "k"}, "Pass singleton_key or unique, not both"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_before_anything_is_written(runner, tenant, policy, options, message):
    with pytest.raises(InvalidJobData) as err:
        runner.schedule_job("t.echo", {}, tenant_id=tenant, unique=policy, **options)
    assert str(err.value) == message
    assert not Job.objects.exists()


def test_debounce_sets_the_run_time_itself(runner, tenant):
    with pytest.raises(InvalidJobData) as err:
        runner.schedule_job_at(
            "t.echo", {}, timezone.now(), tenant_id=tenant, unique=Debounce("k", timedelta(seconds=1))
        )
    assert (
        str(err.value) == "A Debounce policy sets the run time itself: use schedule_job, not schedule_job_at"
    )
    assert not Job.objects.exists()
