"""The site's job-running health in one structured report: the health view, the dashboard's runner indicator and
monitoring scripts all read `health_report()`.

It answers three questions: does the backend answer (`reachable`), is the site on its fallback
(`fallback_active`, with the reason), and does work wait where no live worker takes it (`unserved`, each entry
naming the queue and the fix). A runner that cannot even be created (a misconfiguration) is reported, not
raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..conf import env_setting
from .base import UnservedQueue
from .factory import JobRunnerFactory

logger = logging.getLogger("jobscheduler.runners")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    #: JOB_RUNNER_TYPE as configured.
    configured: str
    #: The backend new jobs go to now ("none" when no runner could be created).
    active: str
    reachable: bool
    fallback_active: bool = False
    fallback_reason: str | None = None
    unserved: tuple[UnservedQueue, ...] = ()
    #: Why the runner could not be created, when it could not.
    error: str | None = None

    @property
    def healthy(self) -> bool:
        """Jobs scheduled now will run: the backend answers and no waiting work lacks a worker."""
        return self.reachable and not self.unserved

    @property
    def detail(self) -> str:
        """The one line that explains a degraded state (the fallback's reason, or the runner's error)."""
        return self.fallback_reason or self.error or ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "configured": self.configured,
            "active": self.active,
            "reachable": self.reachable,
            "fallback_active": self.fallback_active,
            "fallback_reason": self.fallback_reason,
            "unserved": [queue.as_dict() for queue in self.unserved],
            "error": self.error,
        }


def health_report() -> HealthReport:
    """Ask the site's runner now (a database query; for Temporal, a health check and two task-queue
    descriptions)."""
    configured = str(env_setting("JOB_RUNNER_TYPE")).strip().lower()
    try:
        runner = JobRunnerFactory.get_instance()
        reachable = runner.is_reachable()
        unserved = tuple(runner.unserved_queues()) if reachable else ()
    except (
        Exception
    ) as exc:  # a broken runner is reported: the health view and the dashboard must still answer
        logger.warning("Job runner unavailable: %s", exc, extra={"action": "runner_probe_failed"})
        return HealthReport(configured=configured, active="none", reachable=False, error=str(exc))
    return HealthReport(
        configured=configured,
        active=str(runner.runner_type),
        reachable=reachable,
        fallback_active=bool(runner.fallback_active),
        fallback_reason=runner.fallback_reason,
        unserved=unserved,
    )
