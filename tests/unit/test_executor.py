"""The executor on real slot threads running real handlers, without a database: deadlines, giving up on a
handler, replacing its slot, releasing at shutdown. Outcomes land in a real (not started) completer."""

import threading

import pytest

from jobscheduler import JobHandlerRegistry, RetryPolicy
from jobscheduler.queue.completer import Completer
from jobscheduler.queue.execution import simple_outcome
from jobscheduler.queue.executor import Executor
from jobscheduler.states import Outcome

from .worker_fakes import Gate, attempt_of, record_all, wait_until

NO_RETRY = RetryPolicy(max_attempts=1)
THREE_TRIES = RetryPolicy(max_attempts=3, initial_interval_ms=1000, backoff_coefficient=2.0)


@pytest.fixture
def wake():
    return threading.Event()


@pytest.fixture
def completer(wake):
    return Completer(on_retry=lambda delay_ms, now: None, wake=wake)


@pytest.fixture
def executor(completer, wake):
    ex = Executor(completer=completer, wake=wake, max_payload_bytes=1024, default_timeout_ms=60_000)
    yield ex
    ex.stop_slots()


def outcomes(completer):
    """The outcomes handed to the completer since the last call (recorded, as its thread would)."""
    return [o for _, o in record_all(completer).outcomes]


def slot_threads(executor) -> dict[str, threading.Thread]:
    return {t.name: t for t in threading.enumerate() if t.name.startswith("jobscheduler-slot-")}


def test_a_handler_runs_on_a_slot_and_its_outcome_reaches_the_completer(executor, completer, wake):
    JobHandlerRegistry.register("u.echo", lambda job_id, data: {"got": data["x"]})
    attempt = attempt_of("u.echo", data='{"x": 7}')
    executor.add_slots(1)
    executor.start([attempt], now=0.0)
    assert wait_until(lambda: executor.running_count == 0)
    assert wake.is_set()
    (outcome,) = outcomes(completer)
    assert (outcome.job_id, outcome.outcome, outcome.result_json) == (
        attempt.job_id,
        Outcome.COMPLETED,
        '{"got": 7}',
    )


def test_deadline_comes_from_the_handler_timeout_or_the_default(executor):
    JobHandlerRegistry.register("u.short", lambda job_id, data: None, timeout_ms=250)
    known, unknown = attempt_of("u.short"), attempt_of("u.unregistered")
    executor.start([known, unknown], now=100.0)  # no slots: they stay running
    assert known.deadline == pytest.approx(100.25)
    assert unknown.deadline == pytest.approx(160.0)
    assert executor.next_deadline() == pytest.approx(100.25)
    assert executor.find(known.job_id) is known


def test_an_attempt_past_its_deadline_fails_with_jobtimeout_and_its_slot_is_replaced(executor, completer):
    gate = Gate(honour_cancel=False)  # only the interruption can end it
    JobHandlerRegistry.register("u.stuck", gate.handler, retry=NO_RETRY, timeout_ms=50)
    JobHandlerRegistry.register("u.quick", lambda job_id, data: "done")
    stuck = attempt_of("u.stuck", max_attempts=1)
    executor.add_slots(1)
    executor.start([stuck], now=100.0)
    assert gate.entered.wait(5)
    old_slot = slot_threads(executor)["jobscheduler-slot-1"]

    executor.expire_timeouts(100.049)  # not yet
    assert executor.running_count == 1 and not completer.pending

    executor.expire_timeouts(100.05)
    assert executor.running_count == 0 and executor.slots == 2
    assert stuck.ctx.is_cancelled and stuck.lost
    (outcome,) = outcomes(completer)
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error == "JobTimeout: Attempt exceeded its timeout of 50 ms"
    assert outcome.error_type == "JobTimeout"
    # The interrupted handler's own outcome comes too late to count; its thread leaves the pool.
    assert wait_until(lambda: not old_slot.is_alive())
    assert gate.exits == ["JobTimeout"]
    assert not completer.pending

    quick = attempt_of("u.quick")  # the replacement slot runs the next attempt
    executor.start([quick], now=101.0)
    assert wait_until(lambda: executor.running_count == 0)
    (outcome,) = outcomes(completer)
    assert (outcome.job_id, outcome.outcome) == (quick.job_id, Outcome.COMPLETED)
    assert "jobscheduler-slot-2" in slot_threads(executor)


def test_a_timed_out_attempt_with_attempts_left_is_retried_after_its_backoff(executor, completer):
    gate = Gate()
    JobHandlerRegistry.register("u.slow", gate.handler, retry=THREE_TRIES, timeout_ms=20)
    first, last = (
        attempt_of("u.slow", attempt=1, max_attempts=3),
        attempt_of("u.slow", attempt=3, max_attempts=3),
    )
    executor.start([first, last], now=0.0)  # no slot picks them up: only the deadline ends them
    executor.expire_timeouts(1.0)
    by_job = {o.job_id: o for o in outcomes(completer)}
    assert by_job[first.job_id].outcome == Outcome.RETRY
    assert 900 <= by_job[first.job_id].retry_delay_ms <= 1100  # 1 s, with jitter
    assert by_job[last.job_id].outcome == Outcome.FAILED and by_job[last.job_id].retry_delay_ms is None
    assert executor.slots == 2  # each given-up attempt's slot is replaced


def test_an_async_handler_past_its_deadline_is_cancelled(executor, completer):
    import asyncio

    started = threading.Event()
    ended = []

    async def forever(job_id, data):
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    JobHandlerRegistry.register("u.async", forever, retry=NO_RETRY, timeout_ms=30)
    attempt = attempt_of("u.async", max_attempts=1)
    executor.add_slots(1)
    executor.start([attempt], now=0.0)
    assert started.wait(5)
    executor.expire_timeouts(0.03)
    assert wait_until(lambda: ended == ["cancelled"])
    (outcome,) = outcomes(completer)
    assert outcome.error == "JobTimeout: Attempt exceeded its timeout of 30 ms"


def test_only_the_first_outcome_of_an_attempt_counts(executor, completer):
    attempt = attempt_of("u.any")
    executor.start([attempt], now=0.0)
    executor.release_all()
    executor.expire_timeouts(10_000.0)  # already ended: no second outcome, no extra slot
    (outcome,) = outcomes(completer)
    assert outcome.outcome == Outcome.RELEASED and outcome.error == "Worker shut down"
    assert executor.slots == 0


def test_release_all_tells_running_handlers_to_stop(executor, completer):
    gate = Gate()
    JobHandlerRegistry.register("u.long", gate.handler)
    attempt = attempt_of("u.long")
    executor.add_slots(1)
    executor.start([attempt], now=0.0)
    assert gate.entered.wait(5)
    executor.release_all()
    assert executor.running_count == 0
    assert wait_until(lambda: gate.exits == ["cancelled"])
    (outcome,) = outcomes(completer)
    assert (outcome.job_id, outcome.outcome) == (attempt.job_id, Outcome.RELEASED)


def test_a_later_attempt_of_the_same_job_is_not_dropped_when_the_earlier_one_ends(executor):
    earlier = attempt_of("u.any")
    executor.start([earlier], now=0.0)
    later = attempt_of("u.any", attempt=2)
    later.job_id = earlier.job_id
    executor.start([later], now=0.0)  # rescued and claimed again before the earlier attempt's end arrived
    assert executor.finish(earlier, simple_outcome(earlier, Outcome.COMPLETED))
    assert executor.find(earlier.job_id) is later and executor.running_count == 1
