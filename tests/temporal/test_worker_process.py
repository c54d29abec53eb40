"""A worker process killed in the middle of an attempt: Temporal notices (heartbeat timeout), retries the attempt
on a restarted worker, and the record shows the lost attempt and the one that finished the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from jobscheduler.models import JobDetail, Worker
from jobscheduler.registry import JobHandlerRegistry, RetryPolicy
from jobscheduler.temporal.runner import TemporalJobRunner
from tests.support import processes

from .conftest import HEARTBEAT_TIMEOUT_MS, steps, subprocess_env, wait_for_status, wait_until
from .worker_process import KILL_RESTART_JOB, slow_first_attempt

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

SCRIPT = Path(__file__).with_name("worker_process.py")


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT)], env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> None:
        wait_until(lambda: "Temporal worker on" in self.log.read_text() or self.proc.poll() is not None, 30)
        assert self.proc.poll() is None, self.log.read_text()

    def stop(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        finally:
            self._out.close()


@pytest.fixture
def worker_env(temporal_address: str) -> dict[str, str]:
    queue = f"jobs-kill-{uuid.uuid4().hex[:8]}"  # not the in-process worker's queue
    return {
        **subprocess_env(),
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_JOB_TASK_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }


def test_killed_worker_is_replaced_and_the_job_finishes(worker_env, tenant, tmp_path):
    JobHandlerRegistry.register(
        KILL_RESTART_JOB, slow_first_attempt, retry=RetryPolicy(max_attempts=3, initial_interval_ms=200)
    )
    runner = TemporalJobRunner.connect(
        address=worker_env["TEMPORAL_ADDRESS"],
        task_queue=worker_env["TEMPORAL_JOB_TASK_QUEUE"],
        heartbeat_timeout_ms=HEARTBEAT_TIMEOUT_MS,
    )
    first = WorkerProcess(worker_env, tmp_path / "first.log")
    second = None
    try:
        first.wait_ready()
        result = runner.schedule_job(KILL_RESTART_JOB, {"tenantId": str(tenant)})
        job = wait_for_status(result.job_id, "processing")
        assert job.meta["workerId"].endswith(f":{first.proc.pid}")

        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        second = WorkerProcess(worker_env, tmp_path / "second.log")
        second.wait_ready()
        assert Worker.objects.filter(backend="temporal", pid=second.proc.pid).exists()

        job = wait_for_status(result.job_id, "completed", timeout=30)
        assert job.meta["attempts"] == 2 and job.meta["workerId"].endswith(f":{second.proc.pid}")
        assert steps(result.job_id) == [
            ("execution_started", "processing"),
            ("execution_failed", "failed"),
            ("execution_retry_scheduled", "queued"),
            ("execution_started", "processing"),
            ("execution_completed", "completed"),
        ]
        lost = JobDetail.objects.get(job_id=result.job_id, step_name="execution_failed")
        assert lost.result["errorType"] == "AttemptLost" and lost.retry_count == 0
        done = JobDetail.objects.get(job_id=result.job_id, step_name="execution_completed")
        assert done.result["result"] == {"attempt": 2, "pid": second.proc.pid}

        assert second.stop(signal.SIGTERM) == 0  # graceful shutdown on SIGTERM
        assert "Shutting down" in second.log.read_text()
        assert not Worker.objects.filter(pid=second.proc.pid).exists()
    finally:
        for worker in (first, second):
            if worker is not None and worker.proc.poll() is None:
                os.kill(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait()
        runner.close()


def test_default_concurrency_is_the_one_pgboss_uses(worker_env, tmp_path):
    """`runjobworker --backend temporal` without --concurrency takes the same default as pgboss, 5 per CPU
    (on a machine of 3 CPUs: 15), and registers it in the workers table."""
    worker = processes.WorkerProcess(
        ["--backend", "temporal", "--shutdown-timeout", "1"],
        processes.FAST_SETTINGS,
        tmp_path / "default.log",
        {
            "TEMPORAL_ADDRESS": worker_env["TEMPORAL_ADDRESS"],
            "TEMPORAL_JOB_TASK_QUEUE": worker_env["TEMPORAL_JOB_TASK_QUEUE"],
            "TEST_CPU_COUNT": "3",
        },
    )
    try:
        wait_until(lambda: "Temporal worker on" in worker.output() or worker.proc.poll() is not None, 30)
        assert f"queues default ({worker_env['TEMPORAL_JOB_TASK_QUEUE']!r}, 15 slots)" in worker.output()
        row = Worker.objects.get(pid=worker.pid)
        assert (row.backend, row.concurrency) == ("temporal", 15)
        assert worker.terminate(20) == 0
    finally:
        worker.kill()
