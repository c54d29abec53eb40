"""The worker's decisions, one loop turn at a time (`step(now)`), on its real parts with a fake main connection
and recording done by hand: backpressure, burst exit, retry wake-ups, shutdown, a lost connection."""

import logging
import time

import pytest

from jobscheduler import JobHandlerRegistry, RetryPolicy
from jobscheduler.queue.execution import simple_outcome
from jobscheduler.queue.worker import PgBossWorker
from jobscheduler.states import Outcome

from .worker_fakes import FakeDatabase, Gate, claim_row, record_all, wait_until


@pytest.fixture(autouse=True)
def slow_poll(settings):
    # The poll backstop out of the way: a claim happens only for the reason a test gives it.
    settings.JOBSCHEDULER = {"POLL_INTERVAL_SECONDS": 600.0, "FETCH_BATCH_SIZE": 100}


@pytest.fixture
def make_worker():
    made = []

    def make(rows=(), *, concurrency=4, burst=False, shutdown_timeout=5.0, slots=True):
        db = FakeDatabase(list(rows))
        worker = PgBossWorker(
            concurrency=concurrency,
            burst=burst,
            shutdown_timeout=shutdown_timeout,
            worker_id="w",
            connection=db,
        )
        if slots:
            worker.executor.add_slots(concurrency)
        made.append(worker)
        return worker, db

    yield make
    for worker in made:
        worker.executor.stop_slots()


def test_claims_only_as_many_as_backpressure_allows(make_worker):
    worker, db = make_worker([claim_row("u.none") for _ in range(30)], concurrency=4, slots=False)
    assert not worker.step(0.0)
    assert db.limits == [4] and worker.executor.running_count == 4
    worker.executor.release_all()  # four outcomes waiting to be recorded: within two batches ahead, no slot
    worker.step(0.1)
    assert db.limits == [4, 4]
    worker.executor.release_all()  # eight waiting: still within two batches ahead
    worker.step(0.15)
    assert db.limits == [4, 4, 4]
    batch = worker.completer.take()  # the completer sends those eight: unrecorded until it is done
    first, second, *_ = worker.executor.running()
    for attempt in (first, second):
        worker.executor.finish(attempt, simple_outcome(attempt, Outcome.RELEASED))
    worker.producer.note_ready()
    assert not worker.step(0.2)  # two running, ten unrecorded (two beyond two batches ahead): no free slot
    assert db.limits == [4, 4, 4]
    worker.completer.recorded(batch, {a.job_id for a, _ in batch.outcomes}, now=0.3)
    worker.step(0.4)  # two running, two unrecorded: two free slots
    assert db.limits == [4, 4, 4, 2]
    worker.executor.release_all()
    worker.producer.note_ready()
    worker.step(0.5)  # nothing running, six unrecorded: four free slots
    assert db.limits == [4, 4, 4, 2, 4]
    worker.executor.release_all()
    worker.producer.note_ready()
    worker.step(0.6)  # nothing running, ten unrecorded: 4 - 0 - (10 - 8)
    assert db.limits == [4, 4, 4, 2, 4, 2]


def test_a_free_slot_alone_does_not_claim_before_a_hint_or_the_poll(make_worker):
    worker, db = make_worker([claim_row("u.none")], slots=False)
    worker.step(0.0)  # a new worker claims at once; a short batch
    worker.step(1.0)
    assert db.limits == [4]
    worker.producer.note_ready()  # NOTIFY
    worker.step(1.1)
    assert db.limits == [4, 3]  # the job claimed first still holds its slot
    worker.step(601.2)  # the poll
    assert db.limits == [4, 3, 3]


def test_burst_exits_when_nothing_is_ready_running_or_unrecorded(make_worker):
    JobHandlerRegistry.register("u.ok", lambda job_id, data: None)
    worker, db = make_worker([claim_row("u.ok") for _ in range(3)], burst=True)
    assert not worker.step(0.0)  # claimed three
    assert wait_until(lambda: worker.executor.running_count == 0)
    worker.producer.note_ready()
    assert not worker.step(0.1)  # nothing claimed, nothing running, but three outcomes unrecorded
    record_all(worker.completer)
    worker.producer.note_ready()
    assert worker.step(0.2)
    assert worker.stats["claimed"] == 3 and worker.stats["completed"] == 3 and worker.stats["claims"] == 3


def test_burst_stays_while_a_job_runs(make_worker):
    gate = Gate()
    JobHandlerRegistry.register("u.gate", gate.handler)
    worker, db = make_worker([claim_row("u.gate")], burst=True)
    worker.step(0.0)
    assert gate.entered.wait(5)
    worker.producer.note_ready()
    assert not worker.step(0.1)
    gate.opened.set()
    assert wait_until(lambda: worker.executor.running_count == 0)
    record_all(worker.completer)
    worker.producer.note_ready()
    assert worker.step(0.2)


def test_a_worker_without_burst_never_exits_on_its_own(make_worker):
    worker, db = make_worker([])
    assert not any(worker.step(t) for t in (0.0, 700.0, 1400.0))
    assert db.limits == [4, 4, 4]


def test_burst_waits_for_its_own_retries_and_claims_when_their_backoff_is_over(make_worker):
    JobHandlerRegistry.register(
        "u.flaky", _fails_first_time, retry=RetryPolicy(max_attempts=3, initial_interval_ms=1000)
    )
    job_id, tenant, name, _, max_attempts, token, data, *_ = row = claim_row(
        "u.flaky", attempt=1, max_attempts=3
    )
    worker, db = make_worker([row], burst=True)
    assert not worker.step(time.monotonic())
    assert wait_until(lambda: worker.executor.running_count == 0)
    (outcome,) = [o for _, o in record_all(worker.completer).outcomes]
    assert outcome.outcome == Outcome.RETRY
    wake = worker.producer.next_wake()
    assert worker.producer.waiting_retry and 0.8 <= wake - time.monotonic() <= 1.2
    assert not worker.step(wake - 0.5)  # before the backoff, without a hint: no claim
    assert db.limits == [4]
    worker.producer.note_ready()
    assert not worker.step(wake - 0.4)  # a claim finds nothing, yet a burst worker waits for its retry
    assert db.limits == [4, 4]
    db.ready.append((job_id, tenant, name, 2, max_attempts, token, data, 0.0, None, None))  # ready again
    assert not worker.step(wake)  # the wake-up claims it
    assert db.limits == [4, 4, 4] and not worker.producer.waiting_retry
    assert wait_until(lambda: worker.executor.running_count == 0)
    (outcome,) = [o for _, o in record_all(worker.completer).outcomes]
    assert (outcome.attempt, outcome.outcome) == (2, Outcome.COMPLETED)
    worker.producer.note_ready()
    assert worker.step(wake + 0.1)


def test_shutdown_drains_running_jobs_then_exits(make_worker, caplog):
    gate = Gate(honour_cancel=False)
    JobHandlerRegistry.register("u.gate", gate.handler)
    worker, db = make_worker([claim_row("u.gate"), claim_row("u.gate")])
    t0 = time.monotonic()
    worker.step(t0)
    assert gate.entered.wait(5)
    db.ready.append(claim_row("u.gate"))
    worker.request_stop()
    with caplog.at_level(logging.INFO, logger="jobscheduler.worker"):
        assert not worker.step(t0 + 1.0)
    (stopping,) = [r for r in caplog.records if getattr(r, "action", None) == "worker_stopping"]
    assert stopping.getMessage() == "Stopping: no new claims; waiting up to 5.0s for 2 running job(s)"
    assert not worker.step(t0 + 5.9)  # within the shutdown timeout: waiting
    gate.opened.set()
    assert wait_until(lambda: worker.executor.running_count == 0)
    assert not worker.step(t0 + 5.95)  # finished, not recorded yet
    outcomes = [o.outcome for _, o in record_all(worker.completer).outcomes]
    assert outcomes == [Outcome.COMPLETED, Outcome.COMPLETED]
    assert worker.step(t0 + 5.99)
    assert db.limits == [4] and len(db.ready) == 1  # no claim after the stop


def test_shutdown_past_its_timeout_releases_the_rest_without_using_up_their_attempt(make_worker):
    gate = Gate()
    JobHandlerRegistry.register("u.gate", gate.handler)
    rows = [claim_row("u.gate", attempt=2, max_attempts=2) for _ in range(2)]
    worker, db = make_worker(rows, shutdown_timeout=3.0)
    t0 = time.monotonic()
    worker.step(t0)
    worker.request_stop()
    assert not worker.step(t0 + 10.0)
    assert not worker.step(t0 + 12.99)
    assert worker.executor.running_count == 2
    assert not worker.step(t0 + 13.0)  # the deadline: released, not recorded yet
    assert worker.executor.running_count == 0
    batch = record_all(worker.completer)
    assert {a.job_id for a, _ in batch.outcomes} == {r[0] for r in rows}
    # RELEASED is the outcome that gives the attempt back (FINISH decrements it; see the integration test).
    assert all(
        (o.outcome, o.error, o.attempt) == (Outcome.RELEASED, "Worker shut down", 2)
        for _, o in batch.outcomes
    )
    assert worker.step(t0 + 13.05)
    assert wait_until(lambda: gate.exits == ["cancelled", "cancelled"])  # the handlers were told to stop
    assert not worker.completer.pending  # their late outcomes did not count


def test_timeouts_are_enforced_by_the_loop_and_the_slot_replaced(make_worker):
    gate = Gate(honour_cancel=False)
    JobHandlerRegistry.register("u.stuck", gate.handler, timeout_ms=1000, retry=RetryPolicy(max_attempts=1))
    worker, db = make_worker([claim_row("u.stuck", max_attempts=1)], concurrency=1)
    worker.step(0.0)
    assert gate.entered.wait(5)
    (attempt,) = worker.executor.running()
    worker.step(attempt.deadline - 0.01)
    assert worker.executor.running_count == 1
    worker.step(attempt.deadline)
    assert worker.executor.running_count == 0 and worker.executor.slots == 2
    (outcome,) = [o for _, o in record_all(worker.completer).outcomes]
    assert (outcome.outcome, outcome.error_type) == (Outcome.FAILED, "JobTimeout")
    assert wait_until(lambda: gate.exits == ["JobTimeout"])


def test_a_lost_connection_costs_a_turn_and_the_claim_is_tried_again(make_worker, caplog):
    worker, db = make_worker([claim_row("u.none")], slots=False)
    db.lose_next = True
    with caplog.at_level(logging.WARNING, logger="jobscheduler.worker"):
        assert not worker.step(0.0)
    assert db.reopened == 1 and db.limits == [] and worker.stats["claims"] == 0
    assert [r.action for r in caplog.records] == ["db_lost"]
    worker.step(0.1)  # still wanted: the failed claim changed nothing
    assert db.limits == [4] and worker.executor.running_count == 1


def test_stats_keep_their_keys_in_order(make_worker):
    worker, _ = make_worker([], slots=False)
    assert list(worker.stats) == [
        "claimed",
        "completed",
        "failed",
        "retried",
        "cancelled",
        "stale",
        "claims",
        "flushes",
    ]


def _fails_first_time(job_id, data):
    from jobscheduler import current_job

    if current_job().attempt == 1:
        raise RuntimeError("not yet")
    return None


def test_a_full_worker_waits_instead_of_spinning_once_the_poll_is_due(make_worker, settings):
    settings.JOBSCHEDULER = {"POLL_INTERVAL_SECONDS": 0.2, "FETCH_BATCH_SIZE": 100}
    worker, db = make_worker([claim_row("u.none") for _ in range(2)], concurrency=2, slots=False)
    worker.step(time.monotonic())
    assert worker.executor.running_count == 2
    time.sleep(0.3)  # the poll is due, but no slot is free: nothing to claim until an attempt ends
    assert worker._wait_time() == pytest.approx(0.2, abs=0.05)
    attempt = worker.executor.running()[0]
    worker.executor.finish(attempt, simple_outcome(attempt, Outcome.COMPLETED))
    assert worker._wait_time() == 0.0  # a free slot and a due poll: claim now
