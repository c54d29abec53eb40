"""Flow control under real workers: a queue's global concurrency holds across processes, also while one of them
is SIGKILLed mid-job (its leases keep their slots until they are rescued).

Jobs run `t.slot`, which writes its ledger row when it starts and completes it when it ends; `ledger.check`
sweeps those intervals per limited queue and counts every start that took the queue over its limit
(`limit_exceeded`, 0 in every run), and reports the peak it saw (which must reach the limit, or the test
proved nothing).
"""

from __future__ import annotations

import time
import uuid

import pytest

from jobscheduler import JobRunnerFactory
from tests.acceptance.ledger import check
from tests.acceptance.support import drain, pid_of_worker_id, query
from tests.support.processes import wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


def enqueue(runner, tenant, count: int, seconds: float, queue: str | None = None) -> list[str]:
    data = [{"seconds": seconds}] * count
    return [r.job_id for r in runner.schedule_jobs("t.slot", data, tenant_id=tenant, queue=queue)]


def test_three_workers_never_run_more_than_the_queue_concurrency(runner, workers, tenant):
    runner.set_queue_limits("capped", concurrency=3)
    for _ in range(3):
        workers.start("--concurrency", "4")
    capped = enqueue(runner, tenant, 60, 0.1, queue="capped")
    free = enqueue(runner, tenant, 60, 0.1)
    drain(capped + free, timeout=90, pool=workers)
    report = check("concurrency", capped + free, faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
    assert report.peak["capped"] == 3, report.peak  # the limit was reached, never passed
    pids = {e.pid for e in report.executions if str(e.job_id) in set(capped)}
    assert len(pids) == 3, "every worker should have run jobs of the limited queue"


def test_a_killed_worker_keeps_its_slots_until_its_leases_are_rescued(runner, workers, tenant):
    """Three workers share three slots; the one holding most is SIGKILLed mid-job. The others may use its
    slots only once maintenance has rescued its leases (the checker holds a killed execution's slot until the
    step that ended its attempt). Maintenance runs seldom here, so a claim that freed a dead worker's slots
    when its lease expired, before the rescue, would have a second or so to show."""
    runner.set_queue_limits("capped", concurrency=3)
    for _ in range(3):
        workers.start("--concurrency", "4", settings={"MAINTENANCE_INTERVAL_SECONDS": 1.5})
    capped = enqueue(runner, tenant, 15, 3.0, queue="capped")
    wait_for(lambda: sum(leased_by().values()) == 3, message="all three slots to be taken")
    holder, held = max(leased_by().items(), key=lambda item: item[1])
    workers.kill(next(w for w in workers.all if w.pid == pid_of_worker_id(holder)))
    drain(capped, timeout=120, pool=workers)
    report = check("concurrency-kill-9", capped, faulted_pids=workers.faulted)
    report.assert_clean()
    assert len(report.rescued) == held, "each attempt of the killed worker should have been rescued"
    assert report.peak["capped"] == 3, report.peak


def leased_by() -> dict[str, int]:
    return dict(
        query(
            "SELECT worker_id, count(*) FROM jobscheduler_queue "
            "WHERE queue = 'capped' AND lease_token IS NOT NULL GROUP BY 1"
        )
    )


def test_one_tenant_burst_is_held_to_its_limit_and_the_others_keep_flowing(runner, workers, tenant):
    """Tenant A floods a queue limited to two running jobs per tenant; B and C, arriving after the flood, start
    at once instead of waiting behind it, and no tenant ever runs more than two."""
    runner.set_queue_limits("shared", tenant_concurrency=2)
    for _ in range(3):
        workers.start("--concurrency", "4")
    flood = enqueue(runner, tenant, 30, 0.5, queue="shared")
    time.sleep(0.5)
    others, arrived = [uuid.uuid4(), uuid.uuid4()], time.time()
    late = [job for t in others for job in enqueue(runner, t, 4, 0.5, queue="shared")]
    drain(flood + late, timeout=90, pool=workers)
    report = check("tenant-concurrency", flood + late, faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
    assert {report.peak[("shared", t)] for t in [tenant, *others]} == {2}, report.peak
    late_starts = [e.started for e in report.executions if str(e.job_id) in set(late)]
    flood_starts = sorted(e.started for e in report.executions if str(e.job_id) in set(flood))
    # Four jobs of 0.5 s, two at a time: about a second each for B and C, not the flood's 7.5 s.
    assert max(late_starts) - arrived < 3.0, max(late_starts) - arrived
    assert max(late_starts) < flood_starts[-10], "the late tenants waited behind the flood"


#: Claim to handler start in a worker process, on a loaded machine: the ledger's start times trail the database
#: clock the limiter counts on by up to this much.
START_JITTER = 0.25


def test_the_rate_limit_holds_across_workers_within_tolerance(runner, workers, tenant):
    """Five starts per second for the queue, whatever the number of workers: the ledger never shows more than
    five starts within a second (less the start-up jitter), the queue keeps close to the rate, and the
    unlimited queue beside it is not slowed."""
    runner.set_queue_limits("metered", rate_limit="5/s")
    for _ in range(3):
        workers.start("--concurrency", "4")
    metered = enqueue(runner, tenant, 40, 0.01, queue="metered")
    free = enqueue(runner, tenant, 40, 0.01)
    drain(metered + free, timeout=90, pool=workers)
    report = check("rate-limit", metered + free, faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
    starts = sorted(e.started for e in report.executions if str(e.job_id) in set(metered))
    busiest = max(sum(1 for t in starts if s <= t < s + 1.0 - START_JITTER) for s in starts)
    assert busiest <= 5, f"{busiest} starts within {1.0 - START_JITTER}s"
    took = starts[-1] - starts[0]
    # 5 at once, then 35 at 5/s counted in buckets of 1/20 s: 7 s at the limit, 7.35 s at 95 % of it
    print(f"rate-limit: 40 starts in {took:.2f}s, at most {busiest} within {1.0 - START_JITTER}s")
    assert 7.0 - START_JITTER <= took <= 7.35 * 1.3, took
    free_starts = sorted(e.started for e in report.executions if str(e.job_id) in set(free))
    assert free_starts[-1] - free_starts[0] < 3.0, "the unlimited queue should not wait for the metered one"


def test_a_paused_queue_starts_nothing_on_three_workers_and_resumes(runner, workers, tenant):
    """Paused before its jobs arrive, mid-run, and resumed: nothing of the queue starts while it is paused (not
    even on a worker started meanwhile), the other queue runs throughout, and nothing is lost when it resumes."""
    for _ in range(2):
        workers.start("--concurrency", "4")
    runner.pause_queue("held")
    held = enqueue(runner, tenant, 30, 0.05, queue="held")
    free = enqueue(runner, tenant, 30, 0.05)
    wait_for(  # not drain(): the paused queue's rows stay in the queue table
        lambda: (
            query(
                "SELECT count(*) FROM jobs WHERE job_id = ANY(%s::uuid[]) AND status = 'completed'", [free]
            )[0][0]
            == len(free)
        ),
        timeout=60,
        message="the other queue's jobs",
    )
    workers.start("--concurrency", "4")
    time.sleep(2.0)  # ten polls of every worker
    assert query("SELECT count(*) FROM test_ledger WHERE job_id = ANY(%s::uuid[])", [held]) == [(0,)]
    runner.resume_queue("held")
    wait_for(
        lambda: query("SELECT count(*) FROM test_ledger WHERE job_id = ANY(%s::uuid[])", [held])[0][0] >= 5
    )
    runner.pause_queue("held")
    paused_at = time.time()
    drain_running = query(
        "SELECT count(*) FROM jobscheduler_queue WHERE queue = 'held' AND lease_token IS NOT NULL"
    )
    time.sleep(2.0)
    late = query(
        "SELECT count(*) FROM test_ledger WHERE job_id = ANY(%s::uuid[]) AND started > %s",
        [held, paused_at + 0.3],
    )
    assert late == [(0,)], (
        f"jobs of the paused queue started after pause_queue returned ({drain_running} running)"
    )
    runner.resume_queue("held")
    drain(held, timeout=60, pool=workers)
    report = check("pause", held + free, faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
