"""Settings of django-jobscheduler, read from Django settings with documented defaults.

The seed's environment variables (`JOB_RUNNER_TYPE`, `TEMPORAL_ADDRESS`, ...) are read from Django settings
first and the process environment second, so a site can set them either way. Everything else lives in one
`JOBSCHEDULER = {...}` dict; unknown keys are an error so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Seconds a claimed job stays leased without a heartbeat before maintenance puts it back in the queue.
    "LEASE_SECONDS": 30.0,
    # Seconds between a worker's heartbeats (its registration and the leases of its running jobs).
    "HEARTBEAT_SECONDS": 5.0,
    # Seconds an idle worker waits before polling again when no NOTIFY arrived (the backstop).
    "POLL_INTERVAL_SECONDS": 2.0,
    # Seconds between maintenance passes (rescue of expired leases, cron, retention).
    "MAINTENANCE_INTERVAL_SECONDS": 5.0,
    # LISTEN/NOTIFY wake-ups; turn off behind PgBouncer in transaction mode.
    "USE_LISTEN_NOTIFY": True,
    # Timeout of an attempt for handlers registered without `timeout_ms`.
    "DEFAULT_TIMEOUT_MS": 300_000,
    # Retry policy for handlers registered without `retry` (None: RetryPolicy() defaults).
    "DEFAULT_RETRY": None,
    # Largest accepted payload (the JSON text of `data`), in bytes.
    "MAX_PAYLOAD_BYTES": 1024 * 1024,
    # Days of finished `jobs` history kept; None keeps it forever.
    "RETENTION_DAYS": 30,
    # The user a job is recorded for when the caller names none (`jobs.user_id` is NOT NULL).
    "SYSTEM_USER_ID": "00000000-0000-0000-0000-000000000000",
    # Dotted path to `fn(request) -> tenant UUID | None` used by the dashboard and the admin.
    "TENANT_RESOLVER": "jobscheduler.tenancy.user_tenant",
    # Strict multi-tenancy: a schedule call naming no tenant raises TenantRequired, and a user whose resolver
    # names no tenant sees nothing. Off (the default), both mean DEFAULT_TENANT: a site without tenants works.
    "REQUIRE_TENANT": False,
    # The one tenant of a single-tenant site (used only while REQUIRE_TENANT is off); a fixed, documented UUID
    # so the record stays valid if the site later turns tenants on.
    "DEFAULT_TENANT": "00000000-0000-0000-0000-000000000001",
    # Payload/metadata keys whose values the dashboard redacts (matched case-insensitively as substrings).
    "REDACT_KEYS": ("password", "token", "secret", "key", "authorization"),
    # Seconds between the dashboard's live refreshes of a visible page.
    "DASHBOARD_REFRESH_SECONDS": 5,
    # Seconds an overview's figures are reused (per tenant, in Django's cache) before the database is asked again.
    "DASHBOARD_CACHE_SECONDS": 5,
    # Seconds a worker waits for running jobs on SIGTERM before releasing them back to the queue.
    "SHUTDOWN_TIMEOUT_SECONDS": 30.0,
    # Jobs claimed per fetch at most (also bounded by free worker slots).
    "FETCH_BATCH_SIZE": 100,
    # Seconds after which a worker that stopped heartbeating is dropped from the workers list.
    "WORKER_EXPIRY_SECONDS": 60.0,
    # Named queues' default settings: {"emails": {"concurrency": 2, "paused": False}, ...} (see docs/queues.md).
    # They seed each queue's row in jobscheduler_queues; the live values there win and change at run time.
    "QUEUES": {},
    # Bounded connect/start time for the Temporal client, in seconds.
    "TEMPORAL_CONNECT_TIMEOUT_SECONDS": 5.0,
    # Seconds after Temporal was found unreachable during which it is not asked again (calls fail, or fall back
    # to pgboss, at once); the first call after that re-probes it with one bounded health check.
    "TEMPORAL_REPROBE_SECONDS": 10.0,
    # Temporal activity heartbeat timeout: how fast a dead Temporal worker is detected, in seconds.
    "TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS": 10.0,
    # The health view answers 503 once a queue's oldest due job has waited longer than this, in seconds.
    "HEALTH_MAX_WAIT_SECONDS": 300.0,
    # Label worker metrics with the job's tenant (one series per tenant: switch on only for a few tenants).
    "METRICS_TENANT_LABEL": False,
}

ENV_SETTINGS: dict[str, Any] = {
    "JOB_RUNNER_TYPE": "pgboss",
    "JOB_RUNNER_FALLBACK_TO_PGBOSS": True,
    "TEMPORAL_ADDRESS": "localhost:7233",
    "TEMPORAL_NAMESPACE": "default",
    "TEMPORAL_JOB_TASK_QUEUE": "alga-jobs",
}


#: How the default handler slots of a worker are derived; `--help` quotes this text.
DEFAULT_CONCURRENCY_RULE = "5 per CPU"


def default_concurrency() -> int:
    """Handler slots of a worker started without `--concurrency`, the same on both backends. Handlers mostly
    wait on I/O (the database, HTTP), so a few per core keep the CPUs busy without one process hogging the
    queue; CPU-bound handlers want `--concurrency` near the core count instead."""
    return 5 * (os.cpu_count() or 1)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def env_setting(name: str) -> Any:
    """One of the seed's environment-level settings: Django settings, then the environment, then default."""
    default = ENV_SETTINGS[name]
    value = getattr(django_settings, name, None)
    if value is None:
        value = os.environ.get(name)
    if value is None or value == "":
        return default
    if isinstance(default, bool):
        return _as_bool(value)
    return value


def overrides() -> dict[str, Any]:
    """The site's `JOBSCHEDULER` dict (empty when the site sets none)."""
    value = getattr(django_settings, "JOBSCHEDULER", None) or {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"settings.JOBSCHEDULER must be a dict, got {type(value).__name__}")
    return value


def setting(name: str) -> Any:
    """A key of the `JOBSCHEDULER` dict, or its default."""
    values = overrides()
    unknown = values.keys() - DEFAULTS.keys()  # on every call: a few per enqueue, so no set built
    if unknown:
        raise ImproperlyConfigured(f"Unknown JOBSCHEDULER setting(s): {', '.join(sorted(unknown))}")
    if name not in DEFAULTS:
        raise KeyError(name)
    return values.get(name, DEFAULTS[name])
