"""RecordBuffer: a Temporal handler's own record writes never fail the handler, and none is lost or reordered.

Pure logic (the write function stands in for the database); the real database outage is in
tests/acceptance/test_temporal_database_outage.py.
"""

from __future__ import annotations

from django.db import OperationalError

from jobscheduler.temporal import activities
from jobscheduler.temporal.activities import RecordBuffer
from jobscheduler.temporal.inputs import WriteKind


class FlakyDatabase:
    def __init__(self) -> None:
        self.up = True
        self.written: list[dict] = []

    def write(self, batch: list[dict]) -> None:
        if not self.up:
            raise OperationalError("connection refused")
        self.written.extend(batch)


def step(name: str) -> dict:
    return {"kind": WriteKind.STEP, "detailId": name, "name": name, "status": "completed", "at": "t"}


def progress(pct: float) -> dict:
    return {"kind": WriteKind.PROGRESS, "progress": pct, "message": f"{pct}%"}


def test_writes_go_through_at_once_while_the_database_answers():
    db = FlakyDatabase()
    buffer = RecordBuffer(db.write, "job")
    buffer.add(step("a"))
    buffer.add(progress(10))
    assert db.written == [step("a"), progress(10)]
    assert buffer.close() == []


def test_writes_wait_while_the_database_is_away_and_keep_their_order(monkeypatch):
    db = FlakyDatabase()
    buffer = RecordBuffer(db.write, "job")
    db.up = False
    buffer.add(step("a"))  # raises nothing into the handler
    buffer.add(progress(10))
    buffer.add(step("b"))
    buffer.add(progress(20))  # only the latest progress is kept
    assert db.written == []
    db.up = True
    monkeypatch.setattr(activities.time, "monotonic", lambda: 10**9)  # past the wait before the next try
    buffer.add(step("c"))
    assert db.written == [step("a"), step("b"), progress(20), step("c")]
    assert buffer.close() == []


def test_what_is_still_unwritten_at_the_end_goes_to_the_attempt_and_later_writes_are_ignored():
    db = FlakyDatabase()
    buffer = RecordBuffer(db.write, "job")
    db.up = False
    buffer.add(step("a"))
    buffer.add(progress(50))
    assert buffer.close() == [step("a"), progress(50)]
    db.up = True
    buffer.add(step("late"))  # a handler that outlived its attempt
    assert db.written == [] and buffer.close() == [step("a"), progress(50)]


def test_steps_beyond_the_cap_are_dropped_not_the_earlier_ones(monkeypatch):
    monkeypatch.setattr(activities, "MAX_PENDING_STEPS", 3)
    db = FlakyDatabase()
    db.up = False
    buffer = RecordBuffer(db.write, "job")
    for name in "abcde":
        buffer.add(step(name))
    assert [w["name"] for w in buffer.close()] == ["a", "b", "c"]
