"""The worker connection's claim transaction on a real server: the statements of one pipeline, no BEGIN or
COMMIT, run as one transaction (what the queue-settings barrier needs: the lock the first statement takes is
held while the next one runs, and released when the pipeline ends), and a failed statement leaves nothing; the
unlimited claim's unflushed commit stays within its transaction; the claim keeps one generic plan."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from jobscheduler import JobRunnerFactory
from jobscheduler.queue import sql
from jobscheduler.queue.connection import WorkerConnection
from jobscheduler.queue.producer import Producer

pytestmark = pytest.mark.django_db(transaction=True)

KEY = 424242

HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %(key)s AND pid = pg_backend_pid()"
)


@pytest.fixture
def db():
    conn = WorkerConnection(give_up=lambda: True)
    conn.open()
    yield conn
    conn.close()


def test_the_statements_of_one_call_are_one_transaction(db):
    lock, held, xid = db.fetch_in_transaction(
        ("SELECT pg_advisory_xact_lock_shared(%(key)s), pg_current_xact_id()::text", {"key": KEY}),
        (HELD, {"key": KEY}),
        ("SELECT pg_current_xact_id_if_assigned()::text", None),
    )
    assert held == [(1,)]  # the first statement's transaction-scoped lock is still held by the second
    assert xid[0][0] == lock[0][1]  # one transaction id throughout
    assert db.fetch(HELD, {"key": KEY}) == [(0,)]  # and the lock is gone once the call returned


@pytest.fixture
def probe_table():
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE jobscheduler_probe_rows (n int)")
    yield "jobscheduler_probe_rows"
    with connection.cursor() as cur:
        cur.execute("DROP TABLE jobscheduler_probe_rows")


def test_a_failed_statement_rolls_back_the_whole_call_and_leaves_the_connection_usable(db, probe_table):
    with pytest.raises(psycopg.errors.DivisionByZero):
        db.fetch_in_transaction(
            ("SELECT pg_advisory_xact_lock_shared(%(key)s)", {"key": KEY}),
            (f"INSERT INTO {probe_table} VALUES (1) RETURNING n", None),
            ("SELECT 1 / 0", None),
        )
    assert db.fetch(HELD, {"key": KEY}) == [(0,)]
    assert db.fetch(f"SELECT count(*) FROM {probe_table}", {}) == [
        (0,)
    ]  # the write before the failure is undone
    assert db.fetch_in_transaction((f"INSERT INTO {probe_table} VALUES (2) RETURNING n", None)) == [[(2,)]]
    assert db.fetch(f"SELECT n FROM {probe_table}", {}) == [(2,)]


@pytest.fixture
def producer():
    return Producer(worker_id="test-claimer", lease_seconds=60, job_names=None, batch_size=10, poll_seconds=1)


def test_an_unlimited_claim_commits_without_waiting_for_the_flush_and_only_that_claim(db):
    on_the_claim = db.fetch_in_transaction(
        (sql.CLAIM_COMMIT_UNFLUSHED, None), ("SELECT current_setting('synchronous_commit')", None)
    )
    assert on_the_claim[1] == [("off",)]  # in force for the rest of the claim's transaction
    assert db.fetch("SHOW synchronous_commit", {}) == [("on",)]  # and over when it ends


def test_the_workers_prepared_claim_keeps_one_generic_plan(db, producer, fast_settings, tenant):
    runner = JobRunnerFactory.get_instance()
    for _ in range(8):
        runner.schedule_job("t.progress", {}, tenant_id=tenant)
        assert len(producer.claim(db, 1, time.monotonic())) == 1
    assert producer.unlimited  # every claim after the first used the unlimited statement
    plans = db.fetch("SELECT generic_plans, custom_plans FROM pg_prepared_statements", {})
    # PostgreSQL's own choice plans a statement for its parameters on its first five runs at least (and
    # later whenever its estimates say so): half a millisecond of planning per claim.
    assert plans and all(custom == 0 for _, custom in plans), plans
    assert max(generic for generic, _ in plans) >= 7
