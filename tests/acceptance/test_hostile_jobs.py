"""Battery items 5-7 and 10: poison jobs, malformed rows, payload limits and transactional enqueue.

A handler that raises, exits or kills its own worker must fail after exactly its max_attempts while normal work
around it completes; rows written by hand into the queue must fail cleanly without taking a worker down or
importing/unpickling anything; payloads at the limit round-trip exactly and over it nothing is written; a job
exists only if its transaction committed and is never claimed before.
"""

from __future__ import annotations

import base64
import json
import pickle
import re
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import PayloadTooLarge
from jobscheduler.models import Job, QueueJob
from tests.acceptance.ledger import check, ledger_rows
from tests.acceptance.support import drain, query
from tests.support.processes import FAST_SETTINGS, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

LIMIT = 64 * 1024
LOST = "Worker lost: the lease expired without a heartbeat"


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


def test_poison_jobs_fail_after_exactly_max_attempts(runner, workers, tenant):
    """Raising, os._exit(1) and SIGKILL-yourself handlers, amid hundreds of normal jobs, respawning workers
    as the poison takes them down. The raising poison has a worker of its own (with normal jobs) so that its
    last error is its own, not the collateral "worker lost" of a crash next to it."""
    steady = "--jobs", "t.ledger,acc.poison_raise"
    crashing = "--jobs", "t.ledger,acc.poison_exit,acc.poison_kill"
    workers.start("--concurrency", "4", *steady)
    workers.start("--concurrency", "4", *crashing)
    normal = [r.job_id for r in runner.schedule_jobs("t.ledger", [{"seconds": 0.01}] * 300, tenant_id=tenant)]
    poison = {
        name: [runner.schedule_job(name, {"n": i}, tenant_id=tenant).job_id for i in range(2)]
        for name in ("acc.poison_raise", "acc.poison_exit", "acc.poison_kill")
    }
    all_ids = normal + [i for ids in poison.values() for i in ids]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and query("SELECT count(*) FROM jobscheduler_queue")[0][0]:
        for _dead in workers.note_crashes():
            if len(workers.alive()) < 2:
                workers.start("--concurrency", "4", *crashing, wait=False)
        time.sleep(0.1)
    drain(all_ids, timeout=30, pool=workers)
    report = check("poison", all_ids, faulted_pids=workers.faulted, expect_completed=normal)
    report.assert_clean()
    runs = {}
    for e in ledger_rows():
        runs.setdefault(str(e.job_id), []).append(e.attempt)
    expected = {"acc.poison_raise": (3, "RuntimeError: poison attempt 3"), "acc.poison_exit": (2, LOST)}
    expected["acc.poison_kill"] = (2, LOST)
    for name, ids in poison.items():
        attempts, error = expected[name]
        for job_id in ids:
            job = Job.objects.get(job_id=job_id)
            assert (job.status, job.metadata["attempts"], job.metadata["error"]) == (
                "failed",
                attempts,
                error,
            )
            started = query(
                "SELECT count(*) FROM job_details WHERE job_id = %s AND step_name = 'execution_started'",
                [uuid.UUID(job_id)],
            )[0][0]
            assert started == attempts, (name, started)
            # a crash next to it may take an attempt down before its handler ran: never more than allowed
            assert set(runs.get(job_id, [])) <= set(range(1, attempts + 1)), (name, runs.get(job_id))
            if name == "acc.poison_raise":
                assert sorted(runs[job_id]) == [1, 2, 3]
    assert len(workers.faulted) >= 2  # the exit/kill attempts took workers down (two may share one crash)


def _insert_raw(tenant, name: str, metadata_sql: str, params=()) -> uuid.UUID:
    """A job written by hand: a `jobs` row and a queue row, bypassing every check of the runner."""
    job_id = uuid.uuid4()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO jobs (tenant, job_id, type, metadata, status, user_id) "
            f"VALUES (%s, %s, %s, {metadata_sql}, 'queued', %s)",
            [tenant, job_id, name, *params, uuid.uuid4()],
        )
        cur.execute(
            "INSERT INTO jobscheduler_queue (job_id, tenant, name, priority, run_at, attempt, max_attempts, "
            "cancel_requested) VALUES (%s, %s, %s, 0, now(), 0, 3, false)",
            [job_id, tenant, name],
        )
    return job_id


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malformed_rows_fail_cleanly_and_the_worker_survives(runner, workers, tenant, tmp_path):
    """Unknown or importable-looking names, non-object data, a pickle, deep nesting and oversized strings."""
    marker = tmp_path / "unpickled"
    pickled = base64.b64encode(pickle.dumps(_Touch(str(marker)))).decode()
    cases = {
        _insert_raw(tenant, "os.system", "%s::jsonb", ['{"data": {"cmd": "touch /tmp/x"}}']): (
            "JobHandlerNotFound: No handler registered for job: os.system"
        ),
        _insert_raw(tenant, "tests.support.handlers.noop", "%s::jsonb", ['{"data": {}}']): (
            "JobHandlerNotFound: No handler registered for job: tests.support.handlers.noop"
        ),
        _insert_raw(tenant, "x" * 255, "%s::jsonb", ['{"data": {}}']): (
            f"JobHandlerNotFound: No handler registered for job: {'x' * 255}"
        ),
        _insert_raw(tenant, "t.echo", "%s::jsonb", ['{"data": null}']): (
            "InvalidJobData: Job data must be a JSON object, got NoneType"
        ),
        _insert_raw(tenant, "t.echo", "%s::jsonb", ['{"data": [1, 2]}']): (
            "InvalidJobData: Job data must be a JSON object, got list"
        ),
        _insert_raw(tenant, "t.echo", "%s::jsonb", [json.dumps({"data": pickled})]): (
            "InvalidJobData: Job data must be a JSON object, got str"
        ),
    }
    ok = runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id
    worker = workers.start("--concurrency", "2", settings={"MAX_PAYLOAD_BYTES": LIMIT})
    try:
        drain([*cases, ok], timeout=30)
    finally:
        print(worker.output()[-4000:])
    for job_id, error in cases.items():
        job = Job.objects.get(job_id=job_id)
        assert job.status == "failed", (error, job.status, job.metadata.get("error"))
        assert job.metadata["error"].startswith(error), (error, job.metadata["error"][:300])
        assert job.metadata["attempts"] == 1  # malformed input is not retried
    assert Job.objects.get(job_id=ok).status == "completed"
    assert worker.proc.poll() is None, worker.output()
    assert not marker.exists(), "a payload was unpickled"
    check("malformed", [*cases, ok], expect_completed=False).assert_clean()


def _payload_of_size(size: int, *, ascii_keys: bool = False) -> dict:
    """Data whose compact JSON text is exactly `size` bytes: with escaped non-ASCII characters in it (PostgreSQL's
    text of it is shorter), or as many plain ASCII keys (PostgreSQL's text of it, with its spaces, is longer)."""
    data: dict = {"text": "é€😀 <script>", "filler": ""}
    if ascii_keys:
        data = {f"k{i}": i for i in range(size // 16)} | {"filler": ""}
    base = len(json.dumps(data, separators=(",", ":")).encode())
    data["filler"] = "a" * (size - base)
    assert len(json.dumps(data, separators=(",", ":")).encode()) == size
    return data


@pytest.mark.parametrize("ascii_keys", [False, True], ids=["escaped-unicode", "many-ascii-keys"])
def test_payload_at_the_limit_round_trips_and_over_it_nothing_is_written(
    runner, workers, settings, tenant, ascii_keys
):
    settings.JOBSCHEDULER = {**FAST_SETTINGS, "MAX_PAYLOAD_BYTES": LIMIT}
    at_limit = _payload_of_size(LIMIT, ascii_keys=ascii_keys)
    before = (Job.objects.count(), QueueJob.objects.count())
    with pytest.raises(PayloadTooLarge, match=f"over the limit of {LIMIT} bytes"):
        runner.schedule_job("t.echo", _payload_of_size(LIMIT + 1), tenant_id=tenant)
    with pytest.raises(PayloadTooLarge):  # one oversized item refuses the whole batch
        runner.schedule_jobs("t.echo", [{}, {}, _payload_of_size(LIMIT + 1)], tenant_id=tenant)
    assert (Job.objects.count(), QueueJob.objects.count()) == before
    job_id = runner.schedule_job("t.echo", at_limit, tenant_id=tenant).job_id
    workers.start("--concurrency", "1", settings={"MAX_PAYLOAD_BYTES": LIMIT})
    drain([job_id], timeout=20, pool=workers)
    job = Job.objects.get(job_id=job_id)
    assert job.status == "completed"
    assert job.metadata["data"] == at_limit
    completed = query(
        "SELECT result -> 'result' FROM job_details WHERE job_id = %s AND step_name = 'execution_completed'",
        [uuid.UUID(job_id)],
    )
    assert completed == [(at_limit,)]  # what the handler received and returned, byte for byte


@pytest.mark.django_db(transaction=False)
def test_history_list_never_selects_payloads(fast_settings, settings, client):
    """200 jobs of 60 kB payload each: the history page reads none of it and stays fast."""
    from django.contrib.auth.models import Permission

    from project.accounts.models import Tenant, User

    settings.JOBSCHEDULER = {**FAST_SETTINGS, "MAX_PAYLOAD_BYTES": LIMIT}
    acme = Tenant.objects.create(name="Acme")
    runner = JobRunnerFactory.get_instance()
    for _ in range(4):
        runner.schedule_jobs("t.echo", [_payload_of_size(60_000)] * 50, tenant_id=acme.tenant)
    user = User.objects.create_user(username="viewer", password="pw", tenant=acme)
    user.user_permissions.add(
        Permission.objects.get(codename="view_job", content_type__app_label="jobscheduler")
    )
    client.force_login(user)
    url = reverse("jobscheduler:job-list")
    client.get(url)  # warm up
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url, {"per_page": 100})
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.context["table"].page.object_list) == 100
    jobs_selects = [q["sql"] for q in queries.captured_queries if 'FROM "jobs"' in q["sql"]]
    assert jobs_selects
    for sql in jobs_selects:
        select_list = sql.split(' FROM "jobs"')[0]
        assert not re.search(r'"jobs"\."metadata"(?!\s*->)', select_list), sql[:500]
    assert elapsed < 1.0, f"history page took {elapsed:.2f}s"


def test_transactional_enqueue(runner, workers, tenant):
    """Rolled back (whole transaction or a savepoint): never runs. Held open: not claimed before commit."""
    for _ in range(2):
        workers.start("--concurrency", "4")
    rolled_back: list[str] = []
    committed: list[str] = []
    for i in range(50):
        with pytest.raises(RuntimeError), transaction.atomic():
            rolled_back.append(runner.schedule_job("t.ledger", {"i": i}, tenant_id=tenant).job_id)
            rolled_back += [r.job_id for r in runner.schedule_jobs("t.ledger", [{}] * 3, tenant_id=tenant)]
            rolled_back.append(
                runner.schedule_job("t.ledger", {}, tenant_id=tenant, singleton_key=f"s{i}").job_id
            )
            raise RuntimeError("roll back")
        with transaction.atomic():
            committed.append(runner.schedule_job("t.ledger", {"i": i}, tenant_id=tenant).job_id)
            with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint rolled back
                rolled_back.append(runner.schedule_job("t.ledger", {}, tenant_id=tenant).job_id)
                raise RuntimeError("roll back the savepoint")
    with transaction.atomic():
        held = [r.job_id for r in runner.schedule_jobs("t.ledger", [{}] * 50, tenant_id=tenant)]
        time.sleep(2.0)  # ten poll intervals and many NOTIFY wake-ups of other commits
        held_uuids = [uuid.UUID(i) for i in held]
        assert query("SELECT count(*) FROM jobs WHERE job_id = ANY(%s)", [held_uuids]) == [(0,)]
        assert not {e.job_id for e in ledger_rows()} & set(held_uuids)
    committed += held
    drain(committed, timeout=60, pool=workers)
    time.sleep(1.0)  # anything wrongly visible would have run by now
    report = check("transactional", committed, faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
    gone = [uuid.UUID(i) for i in rolled_back]
    assert query("SELECT count(*) FROM jobs WHERE job_id = ANY(%s)", [gone]) == [(0,)]
    assert len(rolled_back) == 50 * 5 + 50


def test_deeply_nested_row_fails_without_crashing_the_worker(runner, workers, tenant):
    """Data nested 3000 deep (PostgreSQL stores it; Python's JSON decoder cannot): the job fails, the worker
    and the jobs claimed with it carry on."""
    deep = "[" * 3000 + "]" * 3000
    nested = _insert_raw(
        tenant, "t.echo", "jsonb_build_object('data', jsonb_build_object('deep', %s::jsonb))", [deep]
    )
    others = [r.job_id for r in runner.schedule_jobs("t.ledger", [{}] * 20, tenant_id=tenant)]
    worker = workers.start("--concurrency", "4")
    drain([nested, *others], timeout=30, pool=workers)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    job = Job.objects.get(job_id=nested)
    assert job.status == "failed" and job.metadata["attempts"] == 1
    assert job.metadata["error"].startswith("InvalidJobData"), job.metadata["error"]
    check("deep-nesting", others, faulted_pids=workers.faulted).assert_clean(max_duplicated=0)


def test_oversized_row_fails_with_a_clear_error(runner, workers, tenant):
    """A row written by hand with a payload twice MAX_PAYLOAD_BYTES: refused by the worker too, not run."""
    big = _insert_raw(
        tenant,
        "t.echo",
        "jsonb_build_object('data', jsonb_build_object('big', repeat('x', %s)))",
        [2 * LIMIT],
    )
    worker = workers.start("--concurrency", "1", settings={"MAX_PAYLOAD_BYTES": LIMIT})
    drain([big], timeout=20, pool=workers)
    assert worker.proc.poll() is None
    job = Job.objects.get(job_id=big)
    assert (job.status, job.metadata.get("errorType")) == ("failed", "PayloadTooLarge"), job.status
    assert f"over the limit of {LIMIT} bytes" in job.metadata["error"]
    check("oversized-row", [big], expect_completed=False).assert_clean()


def test_a_malformed_schedule_row_does_not_stop_rescues(runner, workers, tenant):
    """A schedule written by hand with an unknown time zone: maintenance must skip it and keep rescuing."""
    from jobscheduler.models import Schedule

    Schedule.objects.create(
        tenant=tenant,
        key="broken",
        job_name="t.noop",
        cron="* * * * *",
        timezone="Mars/Olympus_Mons",
        user_id=tenant,
        runner_type="pgboss",
        next_run_at=datetime.now(UTC),
    )
    victim = workers.start("--concurrency", "2")
    survivor = workers.start("--concurrency", "2")
    ids = [r.job_id for r in runner.schedule_jobs("t.ledger", [{"seconds": 2}] * 4, tenant_id=tenant)]
    wait_for(
        lambda: query("SELECT count(*) FROM jobs WHERE status = 'processing'")[0][0] == 4,
        message="the jobs to start",
    )
    time.sleep(1.0)  # a few maintenance passes over the broken schedule
    workers.kill(victim)
    drain(ids, timeout=20, pool=workers)
    assert survivor.proc.poll() is None
    check("broken-schedule", ids, faulted_pids=workers.faulted).assert_clean()
