"""The Temporal server restarted under load, with the dev server's persistence on (`--db-filename`): workflows,
timers and queued activities survive in its SQLite file, the workers reconnect by themselves, and every job
completes, recorded once.

The server is this test's own (not the session's in-memory one), stopped with SIGTERM and started again on the
same port and file while a worker process runs attempts.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import uuid

import pytest

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import RunnerUnavailable
from jobscheduler.temporal.client import connect_client
from tests.acceptance.ledger import check
from tests.acceptance.support import drain, query
from tests.support.processes import wait_for
from tests.temporal.conftest import free_port, temporal_cli

pytestmark = [pytest.mark.acceptance, pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


class PersistentTemporal:
    """A dev server keeping its state in a SQLite file, restartable on the same address."""

    def __init__(self, workdir) -> None:
        self.db_file = workdir / "temporal.sqlite"
        self.log_path = workdir / "temporal.log"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ports = [str(free_port()) for _ in range(3)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            str(temporal_cli()), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(self.port), "--http-port", self.ports[0], "--ui-port", self.ports[1],
            "--metrics-port", self.ports[2], "--db-filename", str(self.db_file),
        ]  # fmt: skip
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                asyncio.run(connect_client(self.address, "default", 2))
                return
            except RunnerUnavailable:
                time.sleep(0.3)
        raise AssertionError(f"Temporal did not answer at {self.address}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server(tmp_path):
    temporal = PersistentTemporal(tmp_path)
    temporal.start()
    yield temporal
    temporal.stop()


@pytest.fixture
def temporal_runner(fast_settings, server):
    task_queue = f"acc-restart-{uuid.uuid4().hex[:8]}"
    fast_settings.JOB_RUNNER_TYPE = "temporal"
    fast_settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = False
    fast_settings.TEMPORAL_ADDRESS = server.address
    fast_settings.TEMPORAL_JOB_TASK_QUEUE = task_queue
    fast_settings.JOBSCHEDULER = {**fast_settings.JOBSCHEDULER, "TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS": 3.0}
    JobRunnerFactory.reset()
    runner = JobRunnerFactory.get_instance()
    assert runner.runner_type == "temporal"
    yield runner
    JobRunnerFactory.reset()


def test_server_restart_under_load_every_job_completes_once(temporal_runner, server, workers, tenant):
    task_queue = temporal_runner.task_queue
    worker = workers.start(
        "--backend", "temporal", "--concurrency", "8", "--shutdown-timeout", "1",
        extra_env={"TEMPORAL_ADDRESS": server.address, "TEMPORAL_JOB_TASK_QUEUE": task_queue},
        settings={"TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS": 3.0},
        wait=False,
    )  # fmt: skip
    wait_for(lambda: "Temporal worker on" in worker.output(), timeout=30, message="the Temporal worker")
    rng = random.Random(5)
    ids = [
        temporal_runner.schedule_job(
            "t.ledger", {"seconds": round(rng.uniform(0.3, 1.2), 2)}, tenant_id=tenant
        ).job_id
        for _ in range(40)
    ]
    wait_for(
        lambda: (
            query("SELECT count(*) FROM jobs WHERE job_id = ANY(%s::uuid[]) AND status = 'completed'", [ids])[
                0
            ][0]
            >= 5
        ),
        timeout=60,
        message="a few jobs done before the restart",
    )
    before = query(
        "SELECT count(*) FROM jobs WHERE job_id = ANY(%s::uuid[]) AND status = 'completed'", [ids]
    )[0][0]
    server.stop()  # while attempts run and workflows wait
    assert before < len(ids), "the load finished before the restart; raise the job count"
    time.sleep(3)
    server.start()
    # The workflows live in the persisted file: without --db-filename the restarted server would know none of
    # them and the unfinished jobs would stay queued.
    drain(ids, timeout=180, pool=workers)
    # The restart hit the worker's attempts: an attempt whose completion could not be reported is run again.
    report = check("temporal-restart", ids, faulted_pids={worker.pid})
    report.assert_clean()
    assert worker.proc.poll() is None, worker.output()[-3000:]
    completed_steps = query(
        "SELECT job_id, count(*) FROM job_details WHERE job_id = ANY(%s::uuid[]) AND step_name = 'execution_completed' "
        "GROUP BY job_id",
        [ids],
    )
    assert len(completed_steps) == len(ids) and {n for _, n in completed_steps} == {1}
