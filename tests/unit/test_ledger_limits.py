"""The ledger checker's limit sweep: a slot is a lease. A stalled (faulted) worker's handler that runs on after
its lease was rescued does not count against the limit past the rescue, but is reported as stalled_over_limit;
a healthy worker's execution counts until it really ended."""

from __future__ import annotations

import uuid

from tests.acceptance.ledger import Execution, over_the_limit

QUEUE, TENANT = "q", uuid.uuid4()
STALLED_PID, HEALTHY_PID = 100, 200


def test_a_stalled_workers_execution_holds_its_slot_only_until_its_rescue():
    stalled, taken_over, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    owner = {j: (QUEUE, TENANT) for j in (stalled, taken_over, other)}
    limits = {QUEUE: (None, 2)}  # two per tenant
    executions = [
        Execution(stalled, 1, STALLED_PID, 0.0, 5.0),  # paused at 0.5, woke at 4.9, returned at 5.0
        Execution(other, 1, HEALTHY_PID, 1.0, 6.0),
        Execution(taken_over, 1, HEALTHY_PID, 3.0, 4.0),  # started once the stalled lease was rescued at 2.0
    ]
    rescued_at = {(stalled, 1): 2.0}

    by_lease, peak = over_the_limit(executions, owner, limits, rescued_at, {STALLED_PID})
    physical, _ = over_the_limit(executions, owner, limits, rescued_at)

    assert by_lease == [] and peak[(QUEUE, TENANT)] == 2
    assert physical == [(QUEUE, TENANT, 3.0, 3)]


def test_a_healthy_workers_execution_counts_until_it_ended():
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    owner = {j: (QUEUE, None) for j in (first, second, third)}
    executions = [
        Execution(first, 1, HEALTHY_PID, 0.0, 5.0),
        Execution(second, 1, HEALTHY_PID, 1.0, 6.0),
        Execution(third, 1, HEALTHY_PID, 3.0, 4.0),
    ]
    # A recorded end earlier than the handler's return changes nothing for a worker the test did not fault.
    excess, _ = over_the_limit(executions, owner, {QUEUE: (2, None)}, {(first, 1): 2.0}, {STALLED_PID})
    assert excess == [(QUEUE, None, 3.0, 3)]
