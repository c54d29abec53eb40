"""Fixtures of the acceptance battery: fast settings, the ledger table, a pool of real worker processes.

Every test here runs real `runjobworker` subprocesses against the real test PostgreSQL and injects real
faults; the ledger checker (`ledger.py`) prints one summary line per test, repeated at the end of the session
so a plain `pytest` run shows it.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from django.db import connection

import tests.support.handlers  # noqa: F401  (the handlers the workers run)
from tests.acceptance.ledger import SUMMARIES
from tests.acceptance.newsite import build_wheel
from tests.support.processes import FAST_SETTINGS, WorkerProcess


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/acceptance/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.acceptance)


def pytest_terminal_summary(terminalreporter):
    if SUMMARIES:
        terminalreporter.section("acceptance ledger")
        for line in SUMMARIES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def jobscheduler_wheel(tmp_path_factory):
    """The wheel of this checkout, built once per session for every fresh-site test (tests/acceptance/newsite.py)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def fast_settings(settings):
    settings.JOBSCHEDULER = dict(FAST_SETTINGS)
    return settings


@pytest.fixture
def ledger_table(db):
    """An empty `test_ledger`, written by the handlers of tests/support/handlers.py."""
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS test_ledger "
            "(job_id uuid, attempt int, pid int, started float8, finished float8)"
        )
        cur.execute("TRUNCATE test_ledger")


class WorkerPool:
    """Real worker processes, with every fault the test injects remembered for the ledger checker."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.all: list[WorkerProcess] = []
        self.faulted: set[int] = set()  # pids killed, paused, stopped or crashed
        self.killed_at: dict[int, float] = {}  # pid -> time.time() of its SIGKILL

    def start(
        self, *args: str, settings: dict | None = None, extra_env: dict | None = None, wait: bool = True
    ) -> WorkerProcess:
        merged = {**FAST_SETTINGS, **(settings or {})}
        worker = WorkerProcess(
            list(args), merged, self.tmp_path / f"worker-{len(self.all)}.log", extra_env=extra_env
        )
        self.all.append(worker)
        if wait:
            worker.wait_started()
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.all if w.proc.poll() is None]

    def kill(self, worker: WorkerProcess) -> None:
        self.faulted.add(worker.pid)
        self.killed_at[worker.pid] = time.time()
        worker.kill()

    def kill_random(self, rng: random.Random) -> WorkerProcess | None:
        alive = self.alive()
        if not alive:
            return None
        victim = rng.choice(alive)
        self.kill(victim)
        return victim

    def note_crashes(self) -> list[WorkerProcess]:
        """Workers that died on their own (a poison job took them down): faulted, and returned for respawn."""
        dead = [w for w in self.all if w.proc.poll() is not None and w.pid not in self.faulted]
        for w in dead:
            self.faulted.add(w.pid)
            self.killed_at.setdefault(w.pid, time.time())
        return dead

    def logs(self) -> str:
        return "\n".join(
            f"--- worker pid {w.pid} ---\n{w.log_path.read_text(errors='replace')[-3000:]}" for w in self.all
        )

    def stop_all(self) -> None:
        for worker in self.all:
            worker.signal(signal.SIGCONT)
            worker.signal(signal.SIGKILL)
            worker.wait(10)


@pytest.fixture
def workers(tmp_path, fast_settings, ledger_table):
    pool = WorkerPool(tmp_path)
    yield pool
    pool.stop_all()
