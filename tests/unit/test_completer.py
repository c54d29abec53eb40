"""The completer's buffer without a database: typed handler writes, batches, put-back, counts and stale
attempts; and the FINISH parameters match the statement."""

import logging
import re
import threading

from jobscheduler import tracking
from jobscheduler.queue import sql
from jobscheduler.queue.completer import Completer
from jobscheduler.queue.execution import (
    QueueJobContext,
    failure_outcome,
    finish_statement_params,
    simple_outcome,
)
from jobscheduler.queue.writes import ProgressWrite, StepWrite
from jobscheduler.registry import RetryPolicy
from jobscheduler.states import Outcome

from .worker_fakes import attempt_of


def completer_with(retries: list) -> tuple[Completer, threading.Event]:
    wake = threading.Event()
    return Completer(on_retry=lambda delay_ms, now: retries.append((delay_ms, now)), wake=wake), wake


def test_handler_writes_travel_as_typed_values():
    completer, _ = completer_with([])
    attempt = attempt_of("u.any", attempt=2)
    ctx = QueueJobContext(attempt, completer.submit)
    ctx.progress(40, "halfway")
    ctx.step("load", "completed", {"rows": 3})
    batch = completer.take()
    assert batch.writes == [
        ProgressWrite(tenant=attempt.tenant, job_id=attempt.job_id, attempt=2, pct=40.0, message="halfway"),
        StepWrite(
            tenant=attempt.tenant,
            job_id=attempt.job_id,
            attempt=2,
            name="load",
            status="completed",
            result_json='{"rows": 3}',
        ),
    ]
    assert batch.outcomes == []


def test_unrecorded_attempts_are_held_until_their_batch_is_recorded():
    completer, wake = completer_with([])
    a, b = attempt_of("u.any"), attempt_of("u.any")
    completer.add(a, simple_outcome(a, Outcome.COMPLETED))
    assert completer.held() == [a] and completer.unrecorded == 1 and completer.pending
    batch = completer.take()  # being sent: still held
    completer.add(b, simple_outcome(b, Outcome.COMPLETED))
    assert completer.held() == [b, a] and completer.unrecorded == 2
    completer.recorded(batch, {a.job_id}, now=0.0)
    assert completer.held() == [b] and wake.is_set()


def test_a_batch_that_failed_goes_back_before_what_arrived_since():
    completer, _ = completer_with([])
    a, b = attempt_of("u.any"), attempt_of("u.any")
    completer.add(a, simple_outcome(a, Outcome.COMPLETED))
    completer.submit(ProgressWrite(tenant=a.tenant, job_id=a.job_id, attempt=1, pct=1.0, message=None))
    batch = completer.take()
    completer.add(b, simple_outcome(b, Outcome.COMPLETED))
    completer.put_back(batch)
    again = completer.take()
    assert [x for x, _ in again.outcomes] == [a, b]
    assert len(again.writes) == 1
    assert completer.counts["flushes"] == 0


def test_recorded_outcomes_are_counted_and_stale_ones_logged(caplog):
    retries = []
    completer, _ = completer_with(retries)
    policy = RetryPolicy(max_attempts=3, initial_interval_ms=500)
    done, failed, retried, cancelled, released, stale = (attempt_of("u.any") for _ in range(6))
    for attempt, outcome in [
        (done, simple_outcome(done, Outcome.COMPLETED)),
        (failed, failure_outcome(failed, ValueError("bad"), None)),
        (retried, failure_outcome(retried, RuntimeError("again"), policy)),
        (cancelled, simple_outcome(cancelled, Outcome.CANCELLED)),
        (released, simple_outcome(released, Outcome.RELEASED, reason="Worker shut down")),
        (stale, simple_outcome(stale, Outcome.COMPLETED)),
    ]:
        completer.add(attempt, outcome)
    batch = completer.take()
    with caplog.at_level(logging.WARNING, logger="jobscheduler.worker"):
        completer.recorded(batch, {a.job_id for a in (done, failed, retried, cancelled, released)}, now=50.0)
    assert completer.counts == {
        "completed": 1,
        "failed": 1,
        "retried": 1,
        "cancelled": 1,
        "stale": 1,
        "flushes": 1,
    }
    (delay_ms, now), *rest = retries  # only the recorded retry plans a wake-up
    assert not rest and 450 <= delay_ms <= 550 and now == 50.0
    (record,) = [r for r in caplog.records if getattr(r, "action", None) == "stale_attempt"]
    assert record.getMessage() == (
        f"Stale attempt 1 of job {stale.job_id}: its outcome (completed) was rejected, the lease had moved on"
    )
    assert record.job_id == str(stale.job_id)


def test_a_stale_retry_plans_no_wake_up():
    retries = []
    completer, _ = completer_with(retries)
    attempt = attempt_of("u.any")
    completer.add(attempt, failure_outcome(attempt, RuntimeError("x"), RetryPolicy(max_attempts=3)))
    completer.recorded(completer.take(), set(), now=0.0)
    assert retries == [] and completer.counts["stale"] == 1 and completer.counts["retried"] == 0


def test_finish_params_fill_every_parameter_of_the_finish_statement_and_no_other():
    a, b = attempt_of("u.any"), attempt_of("u.any")
    outcomes = [
        (a, simple_outcome(a, Outcome.COMPLETED, result_json='{"x": 1}')),
        (b, failure_outcome(b, RuntimeError("again"), RetryPolicy(max_attempts=3, initial_interval_ms=200))),
    ]
    params = finish_statement_params(outcomes)
    assert set(params) == set(re.findall(r"%\((\w+)\)b", sql.FINISH))
    assert params["tokens"] == [a.token, b.token]
    assert params["outcomes"] == ["completed", "retry"]
    assert params["delays"][0] is None and 180 <= params["delays"][1] <= 220
    assert all(len(column) == 2 for column in params.values())


def test_record_finished_params_fill_every_parameter_of_its_row_source():
    placeholders = set(re.findall(r"%\((\w+)\)s", tracking.FINISHED_SRC_FROM_ARRAYS))
    assert set(tracking.outcome_columns([])) | {"next_ats", "ats"} == placeholders
