"""Real worker processes for tests: started against the test database, stopped or killed on purpose."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

#: Short intervals so lease, heartbeat and rescue behaviour shows within seconds; strict tenancy as the
#: example site has it (tests that replace the whole JOBSCHEDULER dict with these keep it).
FAST_SETTINGS = {
    "REQUIRE_TENANT": True,
    "LEASE_SECONDS": 1.5,
    "HEARTBEAT_SECONDS": 0.25,
    "POLL_INTERVAL_SECONDS": 0.2,
    "MAINTENANCE_INTERVAL_SECONDS": 0.3,
    "SHUTDOWN_TIMEOUT_SECONDS": 5.0,
    "WORKER_EXPIRY_SECONDS": 3.0,
}


def _host() -> str:
    s = connection.settings_dict
    return s["HOST"] or s["OPTIONS"].get("host", "")


def test_database_url() -> str:
    s = connection.settings_dict
    host = _host()
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{s['NAME']}?host={host}" + (f"&port={s['PORT']}" if s["PORT"] else "")
    return f"postgresql://{auth}@{host}:{s['PORT'] or 5432}/{s['NAME']}"


def libpq_url() -> str:
    s = connection.settings_dict
    parts = [f"dbname={s['NAME']}", f"user={s['USER']}"]
    if _host():
        parts.append(f"host={_host()}")
    for key, name in (("PORT", "port"), ("PASSWORD", "password")):
        if s[key]:
            parts.append(f"{name}={s[key]}")
    return " ".join(parts)


class WorkerProcess:
    def __init__(
        self, args: list[str], settings: dict, log_path: Path, extra_env: dict | None = None
    ) -> None:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=test_database_url(),
            LEDGER_DATABASE_URL=libpq_url(),
            JOBSCHEDULER=json.dumps(settings),
            DJANGO_SETTINGS_MODULE="project.settings",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in wait())
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/support/worker_main.py"), *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "jobscheduler worker" in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"worker did not start in {timeout}s:\n{self.output()}")


def wait_for(predicate, timeout: float = 20, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
