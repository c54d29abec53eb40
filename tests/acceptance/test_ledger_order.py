"""The ledger checker's `order_violated` count catches a step that started before its dependency ended."""

from __future__ import annotations

import uuid

import pytest

from tests.acceptance.ledger import check
from tests.acceptance.support import query

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]


def run(job_id: uuid.UUID, started: float, finished: float | None) -> None:
    query(
        "INSERT INTO test_ledger (job_id, attempt, pid, started, finished) VALUES (%s, 1, 1, %s, %s) RETURNING 1",
        [job_id, started, finished],
    )


def test_order_violated_counts_a_step_started_before_its_dependency_ended(ledger_table):
    dep, early, late, orphan = (uuid.uuid4() for _ in range(4))
    run(dep, 10.0, None)  # a failed execution of the dependency ends nothing
    run(dep, 11.0, 20.0)
    run(early, 15.0, 25.0)  # started while the dependency still ran
    run(late, 20.5, 30.0)
    run(orphan, 40.0, 41.0)  # its dependency never ran successfully
    never = uuid.uuid4()
    report = check(
        "order",
        [dep, early, late, orphan, never],
        expect_completed=False,
        dependencies={early: [dep], late: [dep], orphan: [never]},
    )
    assert sorted(report.order_violated) == sorted([early, orphan])
    assert "order_violated=2" in report.line()
