import signal

import pytest

import tests.support.handlers  # noqa: F401  (the handlers the workers run)
from tests.support.processes import FAST_SETTINGS, WorkerProcess


@pytest.fixture
def fast_settings(settings):
    settings.JOBSCHEDULER = dict(FAST_SETTINGS)
    return settings


@pytest.fixture
def start_worker(tmp_path, fast_settings):
    """Start real `runjobworker` subprocesses on the test database; all are killed at the end of the test."""
    started: list[WorkerProcess] = []

    def start(
        *args: str, settings: dict | None = None, wait: bool = True, extra_env: dict | None = None
    ) -> WorkerProcess:
        merged = {**FAST_SETTINGS, **(settings or {})}
        worker = WorkerProcess(
            list(args), merged, tmp_path / f"worker-{len(started)}.log", extra_env=extra_env
        )
        started.append(worker)
        if wait:
            worker.wait_started()
        return worker

    yield start
    for worker in started:
        worker.signal(signal.SIGKILL)
        worker.wait(10)
