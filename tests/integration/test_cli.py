"""`manage.py jobs`: through call_command, and as a subprocess for the exit codes and JSON a script sees."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job, JobDetail, QueueJob, Schedule
from tests.support.processes import ROOT
from tests.support.processes import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner():
    return JobRunnerFactory.get_instance()


def jobs(*args: str) -> tuple[int, str]:
    """Run `jobs ...` in this process: (exit code, stdout)."""
    out = io.StringIO()
    try:
        call_command("jobs", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    return 0, out.getvalue()


def fail(job_id: str, error: str = "RuntimeError: boom") -> None:
    """Record a job as failed the way an attempt's end is recorded (no worker needed)."""
    from jobscheduler import tracking
    from jobscheduler.states import Outcome

    job = Job.objects.get(job_id=job_id)
    QueueJob.objects.filter(job_id=job.job_id).delete()
    tracking.record_finished(
        [
            tracking.AttemptOutcome(
                tenant=job.tenant, job_id=job.job_id, attempt=1, outcome=Outcome.FAILED, error=error,
                error_type="RuntimeError",
            )
        ]
    )  # fmt: skip


def test_list_filters_and_json(runner, tenant, other_tenant):
    mine = [runner.schedule_job("t.echo", {"n": n}, tenant_id=tenant) for n in range(3)]
    theirs = runner.schedule_job("t.noop", {}, tenant_id=other_tenant)
    fail(mine[0].job_id)

    code, out = jobs("list", "--tenant", str(tenant), "--json")
    assert code == 0
    listed = json.loads(out)
    assert {j["job_id"] for j in listed} == {m.job_id for m in mine}
    assert {j["tenant"] for j in listed} == {str(tenant)}

    code, out = jobs("list", "--status", "failed", "--json")
    assert code == 0 and [j["job_id"] for j in json.loads(out)] == [mine[0].job_id]
    assert json.loads(out)[0]["error"] == "RuntimeError: boom"

    code, out = jobs("list", "--type", "t.noop")
    assert code == 0 and theirs.job_id in out and mine[1].job_id not in out

    assert jobs("list", "--status", "queued", "--limit", "1", "--json")[0] == 0
    assert len(json.loads(jobs("list", "--status", "queued", "--limit", "1", "--json")[1])) == 1
    assert jobs("list", "--since", "1h", "--type", "t.noop")[0] == 0
    future = (Job.objects.get(job_id=theirs.job_id).created_at + timedelta(minutes=1)).isoformat()
    assert jobs("list", "--since", future) == (1, "")  # nothing matched: exit 1, like grep


def test_show_gives_the_record_and_its_steps(runner, tenant):
    res = runner.schedule_job("t.echo", {"n": 7}, tenant_id=tenant)
    fail(res.job_id)
    code, out = jobs("show", res.job_id, "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["job_id"], shown["status"], shown["data"]) == (res.job_id, "failed", {"n": 7})
    assert [s["step"] for s in shown["steps"]] == ["execution_failed"]
    code, out = jobs("show", res.job_id)
    assert code == 0 and "status       failed" in out and "execution_failed (failed)" in out
    assert jobs("show", str(uuid.uuid4()))[0] == 1
    assert jobs("show", res.job_id, "--tenant", str(uuid.uuid4()))[0] == 1


def test_retry_one_or_every_failed_job_matching(runner, tenant):
    failed = [runner.schedule_job("t.echo", {"n": n}, tenant_id=tenant) for n in range(3)]
    for res in failed:
        fail(res.job_id)
    queued = runner.schedule_job("t.echo", {"n": 9}, tenant_id=tenant)

    code, out = jobs("retry", failed[0].job_id, "--json")
    assert code == 0
    [single] = json.loads(out)
    new = Job.objects.get(job_id=single["new_job_id"])
    assert new.metadata["retryOf"] == failed[0].job_id and new.metadata["data"] == {"n": 0}
    assert new.status == "queued"

    assert jobs("retry", queued.job_id)[0] == 3  # not finished: the retry does not apply
    assert jobs("retry", str(uuid.uuid4()))[0] == 1

    code, out = jobs("retry", "--failed", "--type", "t.echo", "--json")
    assert code == 0
    retried = {r["job_id"] for r in json.loads(out)}
    assert retried == {failed[1].job_id, failed[2].job_id}  # the first one was retried already
    assert Job.objects.filter(metadata__retryOf__in=[f.job_id for f in failed]).count() == 3
    code, out = jobs("retry", "--failed", "--type", "t.echo")
    assert code == 0 and "Retried 0 of 0 job(s)" in out


def test_retry_needs_an_id_or_failed(tenant):
    with pytest.raises(CommandError) as refused:
        call_command("jobs", "retry")
    assert str(refused.value) == "Give a job id, or --failed with filters (not both)"
    assert refused.value.returncode == 2


def test_cancel(runner, tenant):
    res = runner.schedule_job("t.echo", {}, tenant_id=tenant)
    code, out = jobs("cancel", res.job_id)
    assert code == 0 and out.strip() == f"{res.job_id} cancelled"
    assert Job.objects.get(job_id=res.job_id).status == "cancelled"
    assert not QueueJob.objects.filter(job_id=res.job_id).exists()
    assert JobDetail.objects.filter(job_id=res.job_id, step_name="execution_cancelled").exists()
    code, out = jobs("cancel", res.job_id, "--json")
    assert code == 3 and json.loads(out) == {"job_id": res.job_id, "cancelled": False, "status": "cancelled"}


def test_schedules_pause_and_resume(runner, tenant):
    res = runner.schedule_recurring_job("t.noop", {}, "*/5 * * * *", tenant_id=tenant, schedule_key="every-5")
    code, out = jobs("schedules", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert (listed["id"], listed["key"], listed["paused"], listed["spec"]) == (
        res.job_id,
        "every-5",
        False,
        "*/5 * * * *",
    )
    code, out = jobs("pause", res.job_id, "--json")
    assert code == 0 and json.loads(out)["paused"] is True
    assert Schedule.objects.get(pk=res.job_id).paused
    code, out = jobs("resume", res.job_id)
    assert code == 0 and out.strip() == f"{res.job_id} active (every-5)"
    assert not Schedule.objects.get(pk=res.job_id).paused
    assert jobs("pause", str(uuid.uuid4()))[0] == 1
    assert jobs("schedules", "--tenant", str(uuid.uuid4())) == (1, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "The job id must be a UUID: 'nope'"),
        (["list", "--tenant", "acme"], "The tenant must be a UUID: 'acme'"),
        (
            ["list", "--since", "yesterday"],
            "--since must be an ISO datetime or an age like 30m, 2h, 7d: 'yesterday'",
        ),
        (["list", "--limit", "0"], "--limit must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message):
    with pytest.raises(CommandError) as refused:
        call_command("jobs", *args)
    assert str(refused.value) == message and refused.value.returncode == 2


def manage(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "project.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", "jobs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exit_codes_and_json_as_a_shell_script_sees_them(runner, tenant):
    # "generate-invoice" is the example site's own handler: `manage.py` knows it, unlike the tests' handlers.
    res = runner.schedule_job("generate-invoice", {"n": 1}, tenant_id=tenant)
    gone = runner.schedule_job("t.echo", {}, tenant_id=tenant)
    fail(gone.job_id)
    fail(res.job_id)

    listed = manage("list", "--status", "failed", "--type", "generate-invoice", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [res.job_id]
    assert manage("list", "--status", "processing").returncode == 1
    missing = manage("cancel", str(uuid.uuid4()))
    assert missing.returncode == 1 and "No job" in missing.stderr
    assert manage("cancel", res.job_id).returncode == 3
    bad = manage("show", "not-a-uuid")
    assert bad.returncode == 2 and "The job id must be a UUID: 'not-a-uuid'" in bad.stderr
    assert manage("frobnicate").returncode == 2
    refused = manage("retry", gone.job_id)
    assert refused.returncode == 4 and "No handler registered for job: t.echo" in refused.stderr
    retried = manage("retry", res.job_id, "--json")
    assert retried.returncode == 0
    assert (
        Job.objects.get(job_id=json.loads(retried.stdout)[0]["new_job_id"]).metadata["retryOf"] == res.job_id
    )
