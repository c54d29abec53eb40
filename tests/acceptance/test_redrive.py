"""Bulk retry at scale: 10,000 failed jobs retried in one call, in bounded batches, then run by real workers.

Every failed job gets exactly one retry (the new job's `retryOf`), each retry runs once, the originals keep
their history, and one audit entry says who did it and how many. A tenth of the jobs write the execution ledger
(each execution opens a connection of its own, too slow for all 10,000 on two cores); every retry's record is
checked: completed after exactly one attempt.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from jobscheduler import JobRunnerFactory
from jobscheduler.models import AuditEntry
from jobscheduler.selection import JobSelection
from tests.acceptance.ledger import check
from tests.acceptance.support import drain, query

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

COUNT = 10_000
LEDGER_SHARE = 1_000  # of COUNT


def test_bulk_retry_of_ten_thousand_failed_jobs(fast_settings, workers, tenant):
    runner = JobRunnerFactory.get_instance()
    witnessed = [
        r.job_id
        for r in runner.schedule_jobs("t.ledger", [{}] * LEDGER_SHARE, tenant_id=tenant, queue="imports")
    ]
    failed = witnessed + [
        r.job_id
        for _ in range((COUNT - LEDGER_SHARE) // 1000)
        for r in runner.schedule_jobs("t.noop", [{}] * 1000, tenant_id=tenant, queue="imports")
    ]
    with connection.cursor() as cur:  # as if each had run out of attempts
        cur.execute(
            "UPDATE jobs SET status = 'failed', updated_at = now(), metadata = metadata || "
            '\'{"error": "RuntimeError: upstream down", "errorType": "RuntimeError"}\' '
            "WHERE job_id = ANY(%s::uuid[])",
            [failed],
        )
        cur.execute("DELETE FROM jobscheduler_queue")
    started = time.monotonic()
    outcome = runner.retry_jobs(JobSelection(status="failed", queue="imports"), tenant, actor="ops")
    took = time.monotonic() - started
    print(f"bulk retry: {outcome.done} of {outcome.matched} failed jobs re-enqueued in {took:.1f}s")
    assert (outcome.matched, outcome.done) == (COUNT, COUNT)
    retries = dict(
        query(
            "SELECT metadata ->> 'retryOf', job_id FROM jobs WHERE tenant = %s AND metadata ? 'retryOf'",
            [tenant],
        )
    )
    assert len(retries) == COUNT and set(retries) == set(failed)  # one retry each
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.count) == ("bulk_retry", "ops", COUNT)
    for _ in range(2):
        workers.start("--concurrency", "32", "--queues", "imports")
    drain(list(retries.values()), timeout=300, pool=workers)
    report = check("bulk-retry-10k", [retries[str(i)] for i in witnessed], faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
    assert query(
        "SELECT status::text, metadata ->> 'attempts', count(*) FROM jobs WHERE job_id = ANY(%s::uuid[]) "
        "GROUP BY 1, 2",
        [list(retries.values())],
    ) == [("completed", "1", COUNT)]
    assert query(
        "SELECT count(*) FROM job_details WHERE job_id = ANY(%s::uuid[]) AND step_name = 'execution_started'",
        [list(retries.values())],
    ) == [(COUNT,)]
    assert query(
        "SELECT count(*) FROM jobs WHERE job_id = ANY(%s::uuid[]) AND status = 'failed'", [failed]
    ) == [(COUNT,)]  # the originals keep their history
