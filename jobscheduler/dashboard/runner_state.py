"""The runner indicator: which backend this site schedules on, whether it answers, whether it is a fallback.

`is_healthy()` may cost a network round trip (Temporal), so the answer is cached for a few seconds per process.
A runner that cannot even be created (a misconfiguration) is shown as such rather than breaking the dashboard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.cache import cache

from ..conf import env_setting
from ..runners.factory import JobRunnerFactory

logger = logging.getLogger("jobscheduler.dashboard")

CACHE_KEY = "jobscheduler:runner-state"
CACHE_SECONDS = 5


@dataclass(frozen=True, slots=True)
class RunnerState:
    configured: str
    active: str
    healthy: bool
    fallback_active: bool
    detail: str = ""


def runner_state() -> RunnerState:
    state = cache.get(CACHE_KEY)
    if state is None:
        state = _probe()
        cache.set(CACHE_KEY, state, CACHE_SECONDS)
    return state


def _probe() -> RunnerState:
    configured = str(env_setting("JOB_RUNNER_TYPE")).strip().lower()
    try:
        runner = JobRunnerFactory.get_instance()
        healthy = bool(runner.is_healthy())
    except Exception as exc:  # the indicator reports a broken runner; it must not take the dashboard down
        logger.warning(
            "Runner unavailable for the dashboard: %s", exc, extra={"action": "runner_probe_failed"}
        )
        return RunnerState(
            configured=configured, active="none", healthy=False, fallback_active=False, detail=str(exc)
        )
    return RunnerState(
        configured=configured,
        active=runner.runner_type,
        healthy=healthy,
        fallback_active=bool(runner.fallback_active),
        detail=str(getattr(runner, "fallback_reason", "") or ""),
    )
