"""The runner indicator of the overview: `health_report()`, reused for a few seconds per process.

The report may cost network round trips (Temporal), and every visible overview refreshes itself every few
seconds, so the answer is cached briefly in Django's cache.
"""

from __future__ import annotations

from django.core.cache import cache

from ..runners.health import HealthReport, health_report

CACHE_KEY = "jobscheduler:runner-state"
CACHE_SECONDS = 5


def runner_state() -> HealthReport:
    state = cache.get(CACHE_KEY)
    if state is None:
        state = health_report()
        cache.set(CACHE_KEY, state, CACHE_SECONDS)
    return state
