"""One record whichever backend ran the job: the same handlers on pgboss and on Temporal leave the same rows.

Each handler of tests/support/handlers.py below runs once through a real pgboss worker process and once through
the Temporal worker of this session; their `jobs` and `job_details` rows are then compared field by field.
Only what must differ is left out: ids, times, the worker's id and the backend's own ids; a traceback's frames
differ with the code that called the handler, so only its presence and last line are compared.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import tests.support.handlers  # noqa: F401  (the handlers both backends run)
from jobscheduler.models import Job, JobDetail
from jobscheduler.queue.runner import PgBossJobRunner
from tests.support.processes import FAST_SETTINGS, WorkerProcess, wait_for

from .conftest import wait_for_status

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

#: Keys of `jobs.metadata` and of a step's result that are times, worker ids or per-backend by nature.
VARYING_KEYS = {"startedAt", "lastStartedAt", "completedAt", "nextAttemptAt", "workerId"}
#: Columns of `jobs` that are ids, times or the backend's own.
VARYING_COLUMNS = {"job_id", "created_at", "updated_at", "runner_type", "external_id", "external_run_id"}

CASES = {
    "success": ("t.progress", "completed"),
    "exception": ("t.fail", "failed"),
    "non-JSON result": ("t.odd_result", "completed"),
    "timeout": ("t.overrun", "failed"),
    "cancel": ("t.wait_cancel", "cancelled"),
}
CANCEL = {"reason": "User requested cancellation", "cancelled_by": "admin@example.com"}


@pytest.fixture
def pgboss_worker(tmp_path):
    worker = WorkerProcess([], dict(FAST_SETTINGS), tmp_path / "pgboss-worker.log")
    worker.wait_started()
    yield worker
    worker.kill()


def _run(runner, job_name: str, final: str, tenant: uuid.UUID) -> Job:
    job_id = runner.schedule_job(job_name, {"case": job_name}, tenant_id=tenant).job_id
    if final == "cancelled":
        wait_for(
            lambda: Job.objects.get(job_id=job_id).meta.get("progress") == 10,
            timeout=20,
            message="the handler",
        )
        assert runner.cancel_job(job_id, tenant, **CANCEL)
    return wait_for_status(job_id, final, timeout=30)


def _comparable(job: Job) -> dict[str, Any]:
    row = {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields}
    for column in VARYING_COLUMNS:
        row.pop(column)
    row["metadata"] = _without_varying(job.metadata)
    details = JobDetail.objects.filter(tenant=job.tenant, job_id=job.job_id).order_by(
        "processed_at", "detail_id"
    )
    row["steps"] = [
        {
            "step_name": d.step_name,
            "status": d.status,
            "retry_count": d.retry_count,
            "result": _result(d.result),
        }
        for d in details
    ]
    return row


def _without_varying(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k not in VARYING_KEYS}


def _result(result: Any) -> Any:
    result = _without_varying(result)
    if isinstance(result, dict) and result.get("traceback"):
        result = {**result, "traceback": result["traceback"].rstrip().splitlines()[-1]}
    return result


@pytest.mark.parametrize("case", list(CASES))
def test_both_backends_record_the_same_rows(case, runner, pgboss_worker, tenant):
    job_name, final = CASES[case]
    on_pgboss = _run(PgBossJobRunner(), job_name, final, tenant)
    on_temporal = _run(runner, job_name, final, tenant)

    assert on_pgboss.runner_type == "pgboss" and on_temporal.runner_type == "temporal"
    pgboss_row, temporal_row = _comparable(on_pgboss), _comparable(on_temporal)
    for key in pgboss_row.keys() | temporal_row.keys():
        assert pgboss_row.get(key) == temporal_row.get(key), f"{case}: {key} differs"
    assert pgboss_row == temporal_row


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("exception", {"error": "RuntimeError: attempt 3 failed", "errorType": "RuntimeError"}),
        (
            "timeout",
            {"error": "JobTimeout: Attempt exceeded its timeout of 500 ms", "errorType": "JobTimeout"},
        ),
        ("cancel", {"cancelReason": CANCEL["reason"], "cancelledBy": CANCEL["cancelled_by"]}),
    ],
)
def test_each_outcome_is_recorded_as_documented(case, expected, runner, tenant):
    job_name, final = CASES[case]
    job = _run(runner, job_name, final, tenant)
    assert {k: job.meta.get(k) for k in expected} == expected
    if case == "exception":
        tracebacks = [d.result["traceback"] for d in JobDetail.objects.filter(job_id=job.job_id,
                      step_name="execution_failed")]  # fmt: skip
        assert len(tracebacks) == 3 and all("RuntimeError: attempt" in t for t in tracebacks)
    if case == "timeout":
        failed = JobDetail.objects.get(job_id=job.job_id, step_name="execution_failed")
        assert failed.result["traceback"] is None  # no handler frame to show for a timeout


def test_a_non_json_result_is_recorded_as_its_repr(runner, tenant):
    job = _run(runner, "t.odd_result", "completed", tenant)
    done = JobDetail.objects.get(job_id=job.job_id, step_name="execution_completed")
    assert done.result == {
        "attempt": 1,
        "result": "{'when': datetime.datetime(2024, 1, 1, 0, 0), 'ratio': nan}",
    }
