"""The producer's decisions without a database: the backpressure rule, when to claim, retry wake-ups."""

import re

import pytest

from jobscheduler.queue import sql
from jobscheduler.queue.producer import RETRY_WAKE_SLACK_SECONDS, Producer, claim_capacity

from .worker_fakes import FakeDatabase, claim_row


@pytest.mark.parametrize(
    ("running", "unrecorded", "expected"),
    [
        (0, 0, 10),  # idle: a full round of claims
        (4, 0, 6),  # running attempts hold their slots
        (0, 20, 10),  # claims may run two batches (2 x concurrency) ahead of recording at no cost
        (4, 20, 6),
        (0, 21, 9),  # beyond two batches ahead, every unrecorded outcome costs a slot
        (3, 22, 5),
        (0, 30, 0),  # three batches behind: claiming waits for recording
        (5, 35, -10),
    ],
)
def test_claim_capacity_is_two_batches_ahead_of_recording(running, unrecorded, expected):
    assert claim_capacity(concurrency=10, running=running, unrecorded=unrecorded) == expected


def producer(**kw) -> Producer:
    args = {"worker_id": "w1", "lease_seconds": 30.0, "job_names": None, "batch_size": 4, "poll_seconds": 2.0}
    return Producer(**(args | kw))


def test_claim_params_name_every_placeholder_of_the_claim():
    p = producer(job_names=["a", "b"])
    placeholders = set(re.findall(r"%\((\w+)\)s", sql.CLAIM))
    assert set(p.claim_params(7)) == placeholders
    assert set(re.findall(r"%\((\w+)\)s", sql.CLAIM_UNLIMITED + sql.CLAIM_BEGIN)) <= placeholders
    assert p.claim_params(7) == {
        "worker_id": "w1",
        "lease_seconds": 30.0,
        "names": ["a", "b"],
        "queues": None,
        "slots": None,
        "limit": 7,
    }
    capped = producer(queues={"emails": 2, "default": None}, running=lambda: [])
    params = capped.claim_params(7)
    assert (params["queues"], params["slots"]) == (["default", "emails"], '{"emails": 2}')


def test_the_claim_leaves_limits_out_only_while_no_served_queue_is_limited_or_paused():
    """The first claim is the full one; once CLAIM_BEGIN said no queue is limited or paused, the unlimited one.
    When a queue becomes limited, the unlimited claim takes nothing, and the producer claims again at once with
    the full statement instead of waiting for the poll."""
    p = producer(batch_size=2)
    db = FakeDatabase([claim_row("t.a") for _ in range(8)])
    p.claim(db, free=2, now=1.0)
    p.claim(db, free=2, now=1.1)
    assert db.statements == [sql.CLAIM, sql.CLAIM_UNLIMITED]
    db.limited = True
    p.maybe_ready = False
    assert p.claim(db, free=2, now=1.2) == []
    assert p.maybe_ready and p.wants_claim(1.2, free=2)  # again now, not at the next poll
    assert len(p.claim(db, free=2, now=1.2)) == 2
    assert db.statements[2:] == [sql.CLAIM_UNLIMITED, sql.CLAIM]
    db.limited = False
    p.claim(db, free=2, now=1.3)
    p.claim(db, free=2, now=1.4)
    assert db.statements[4:] == [sql.CLAIM, sql.CLAIM_UNLIMITED]


def test_a_claim_takes_at_most_a_batch_and_builds_attempts():
    p = producer(batch_size=4)
    rows = [claim_row("t.a", attempt=2, max_attempts=5) for _ in range(6)]
    db = FakeDatabase(rows)
    attempts = p.claim(db, free=10, now=100.0)
    assert db.limits == [4]
    assert [a.job_id for a in attempts] == [r[0] for r in rows[:4]]
    first = attempts[0]
    assert (first.tenant, first.name, first.attempt, first.max_attempts, first.token, first.data) == rows[0][
        1:7
    ]
    assert first.started == 100.0 and first.trace == {"traceparent": None, "tracestate": None}
    assert (p.claims, p.claimed) == (1, 4)
    assert p.claim(db, free=3, now=100.1) and db.limits == [4, 3]  # fewer free slots than a batch


def test_claims_again_at_once_after_a_full_batch_and_waits_for_the_poll_after_a_short_one():
    p = producer(batch_size=4, poll_seconds=2.0)
    db = FakeDatabase([claim_row("t.a") for _ in range(5)])
    assert p.wants_claim(0.0, free=10)  # a new worker claims at once
    p.claim(db, free=10, now=100.0)
    assert p.maybe_ready and p.wants_claim(100.0, free=10)  # full batch: there may be more
    p.claim(db, free=10, now=100.1)  # one row left: a short batch
    assert not p.maybe_ready
    assert not p.wants_claim(101.0, free=10)
    assert p.wants_claim(102.1, free=10)  # the poll backstop
    assert p.next_wake() == pytest.approx(102.1)
    p.note_ready()  # a NOTIFY
    assert p.wants_claim(101.0, free=10)


def test_no_claim_without_a_free_slot_whatever_the_hints():
    p = producer()
    p.note_ready()
    assert not p.wants_claim(1000.0, free=0)
    assert not p.wants_claim(1000.0, free=-3)


def test_retry_wake_ups_plan_the_next_claim_and_end_when_claimed():
    p = producer(poll_seconds=60.0)
    p.claim(FakeDatabase([]), free=10, now=100.0)  # nothing ready: next poll at 160
    assert not p.waiting_retry
    p.note_retry(300.0, now=100.0)  # recorded as a retry with a 300 ms backoff
    p.note_retry(1500.0, now=100.0)
    assert p.waiting_retry
    first = 100.3 + RETRY_WAKE_SLACK_SECONDS
    assert p.next_wake() == pytest.approx(first)
    assert not p.wants_claim(100.29, free=10)
    assert p.wants_claim(first, free=10)
    p.claim(FakeDatabase([]), free=10, now=first)  # the claim at the wake-up consumes it
    assert p.waiting_retry and p.next_wake() == pytest.approx(101.5 + RETRY_WAKE_SLACK_SECONDS)
    assert not p.wants_claim(first + 0.01, free=10)
    p.claim(FakeDatabase([]), free=10, now=102.0)
    assert not p.waiting_retry and p.next_wake() == pytest.approx(162.0)
