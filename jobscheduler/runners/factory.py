"""Which runner this process uses: `JOB_RUNNER_TYPE`, with the Temporal -> pgboss fallback.

The factory holds one runner per process (thread-safe). With `JOB_RUNNER_TYPE=temporal` and
`JOB_RUNNER_FALLBACK_TO_PGBOSS=true` that runner is a `FallbackJobRunner`: jobs go to Temporal, and each job
Temporal cannot be reached to start runs on pgboss instead (see runners/fallback.py), while `fallback_active` and
`fallback_reason` say so to the dashboard and health checks. With the flag off, an unreachable Temporal raises
RunnerUnavailable. Temporal without its package installed is a misconfiguration, not an outage:
ExtraNotInstalled, never a fallback.

`for_runner_type` gives the runner of the backend that recorded a job or schedule, never a stand-in: a Temporal
job's cancel goes to Temporal or fails with RunnerUnavailable.
"""

from __future__ import annotations

import threading

from django.utils.module_loading import import_string

from ..conf import env_setting
from ..exceptions import RunnerUnavailable
from ..extras import Extra, require
from ..states import RunnerType
from .base import JobRunner
from .fallback import FallbackJobRunner

RUNNER_CLASSES = {
    RunnerType.PGBOSS: "jobscheduler.queue.runner.PgBossJobRunner",
    RunnerType.TEMPORAL: "jobscheduler.temporal.runner.TemporalJobRunner",
}


class JobRunnerFactory:
    _instance: JobRunner | None = None
    _others: dict[str, JobRunner] = {}
    _lock = threading.Lock()

    @classmethod
    def get_instance(cls) -> JobRunner:
        runner = cls._instance
        if runner is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls.create()
                runner = cls._instance
        return runner

    @classmethod
    def for_runner_type(cls, runner_type: str) -> JobRunner:
        """The runner of the backend that records jobs with `runner_type` (cancel, pause and run-now go to their
        own backend): RunnerUnavailable when that backend is Temporal and it does not answer."""
        kind = _kind(runner_type)
        runner = cls.get_instance().backend(kind)
        if runner is None:
            with cls._lock:
                runner = cls._others.get(kind)
                if runner is None:
                    # Only a connected runner is kept: the next call tries again (fast within the cool-down).
                    runner = cls._others[kind] = cls._connect(kind)
        return runner.ensure_reachable()

    @classmethod
    def reset(cls) -> None:
        """Forget the process's runner (tests, settings changes); closes what it holds."""
        with cls._lock:
            runners = [cls._instance, *cls._others.values()]
            cls._instance = None
            cls._others = {}
        for runner in runners:
            if runner is not None:
                runner.close()

    @classmethod
    def create(cls) -> JobRunner:
        """The site's runner for JOB_RUNNER_TYPE and JOB_RUNNER_FALLBACK_TO_PGBOSS."""
        kind = _kind(env_setting("JOB_RUNNER_TYPE"))
        if kind == RunnerType.TEMPORAL and env_setting("JOB_RUNNER_FALLBACK_TO_PGBOSS"):
            require(Extra.TEMPORAL)
            temporal = import_string(RUNNER_CLASSES[RunnerType.TEMPORAL])()
            return FallbackJobRunner.start(temporal, import_string(RUNNER_CLASSES[RunnerType.PGBOSS])())
        return cls._connect(kind)

    @staticmethod
    def _connect(kind: RunnerType) -> JobRunner:
        if kind == RunnerType.PGBOSS:
            return import_string(RUNNER_CLASSES[RunnerType.PGBOSS])()
        require(Extra.TEMPORAL)
        return import_string(RUNNER_CLASSES[RunnerType.TEMPORAL]).connect()


def _kind(runner_type: str) -> RunnerType:
    kind = str(runner_type).strip().lower()
    if kind not in RUNNER_CLASSES:
        raise RunnerUnavailable(
            f"Unknown JOB_RUNNER_TYPE {kind!r}: expected one of {', '.join(sorted(RUNNER_CLASSES))}"
        )
    return RunnerType(kind)
