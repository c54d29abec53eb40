"""Which runner this process uses: `JOB_RUNNER_TYPE`, with the Temporal -> pgboss fallback.

The factory holds one runner per process (thread-safe). With `JOB_RUNNER_TYPE=temporal` and
`JOB_RUNNER_FALLBACK_TO_PGBOSS=true`, an unreachable Temporal at start-up yields the pgboss runner, logged as a
warning naming the address and flagged (`fallback_active`, `fallback_reason`) for the dashboard and health checks.
Temporal without its package installed is a misconfiguration, not an outage: ExtraNotInstalled, never a fallback.
"""

from __future__ import annotations

import logging
import threading

from django.utils.module_loading import import_string

from ..conf import env_setting
from ..exceptions import RunnerUnavailable
from ..extras import Extra, require
from ..states import RunnerType
from .base import JobRunner

logger = logging.getLogger("jobscheduler.runners")

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
        """The runner that manages jobs recorded with `runner_type` (cancel and schedules go to their backend)."""
        runner = cls.get_instance()
        if runner.runner_type == runner_type:
            return runner
        with cls._lock:
            other = cls._others.get(runner_type)
            if other is None:
                other = cls._others[runner_type] = cls.create(runner_type)
            return other

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
    def create(cls, runner_type: str | None = None) -> JobRunner:
        kind = (runner_type or env_setting("JOB_RUNNER_TYPE")).strip().lower()
        if kind not in RUNNER_CLASSES:
            raise RunnerUnavailable(
                f"Unknown JOB_RUNNER_TYPE {kind!r}: expected one of {', '.join(sorted(RUNNER_CLASSES))}"
            )
        if kind == RunnerType.PGBOSS:
            return import_string(RUNNER_CLASSES[RunnerType.PGBOSS])()
        require(Extra.TEMPORAL)
        try:
            return import_string(RUNNER_CLASSES[RunnerType.TEMPORAL]).connect()
        except RunnerUnavailable as exc:
            if not env_setting("JOB_RUNNER_FALLBACK_TO_PGBOSS"):
                raise
            logger.warning(
                "Temporal is unreachable at %s (%s); JOB_RUNNER_FALLBACK_TO_PGBOSS is on, so jobs run on pgboss",
                env_setting("TEMPORAL_ADDRESS"),
                exc,
                extra={"action": "runner_fallback", "address": env_setting("TEMPORAL_ADDRESS")},
            )
            runner = import_string(RUNNER_CLASSES[RunnerType.PGBOSS])()
            runner.fallback_active = True
            runner.fallback_reason = f"Temporal unreachable at {env_setting('TEMPORAL_ADDRESS')}: {exc}"
            return runner
