"""Django system checks (`manage.py check`): the mistakes a site can make installing django-jobscheduler.

Each mistake is reported before the first request or worker start (runserver, migrate and runjobworker run the
checks) with an id a site can look up or silence: `jobscheduler.E001`... for errors, `jobscheduler.W001`... for
warnings. The checks read settings only; none connects to a database or to Temporal. Temporal's package is
imported only when the site chooses that backend.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import load_backend
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, Resolver404, URLResolver, get_resolver, resolve, reverse
from django.utils.module_loading import import_string

from .conf import DEFAULTS, env_setting
from .extras import Extra, is_installed
from .registry import RetryPolicy
from .states import RunnerType

TAG = "jobscheduler"
DASHBOARD_URLCONF = "jobscheduler.dashboard.urls"
DASHBOARD_APPS = ("django_tables2", "django_filters")

#: Settings that must be numbers > 0, and those that may also be 0.
POSITIVE_NUMBERS = (
    "LEASE_SECONDS",
    "HEARTBEAT_SECONDS",
    "POLL_INTERVAL_SECONDS",
    "MAINTENANCE_INTERVAL_SECONDS",
    "WORKER_EXPIRY_SECONDS",
    "TEMPORAL_CONNECT_TIMEOUT_SECONDS",
    "TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS",
    "DASHBOARD_REFRESH_SECONDS",
)
NON_NEGATIVE_NUMBERS = ("SHUTDOWN_TIMEOUT_SECONDS", "DASHBOARD_CACHE_SECONDS", "TEMPORAL_REPROBE_SECONDS")
POSITIVE_INTEGERS = ("DEFAULT_TIMEOUT_MS", "MAX_PAYLOAD_BYTES", "FETCH_BATCH_SIZE")
FLAGS = ("USE_LISTEN_NOTIFY", "REQUIRE_TENANT")
UUIDS = ("DEFAULT_TENANT", "SYSTEM_USER_ID")


@register(TAG)
def check_database(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: the queue and the record are PostgreSQL tables (SKIP LOCKED, LISTEN/NOTIFY, JSONB, enums)."""
    database = settings.DATABASES.get("default", {})
    engine = database.get("ENGINE", "")
    try:
        vendor = load_backend(engine).DatabaseWrapper.vendor
    except ImproperlyConfigured:
        return []  # Django itself reports a backend it cannot load
    if vendor == "postgresql":
        return []
    return [
        Error(
            f"django-jobscheduler needs PostgreSQL, but DATABASES['default'] uses {engine} ({vendor}).",
            hint="Point DATABASES['default'] at a PostgreSQL database (ENGINE 'django.db.backends.postgresql'): "
            "the job queue and the jobs record live in it.",
            id="jobscheduler.E001",
        )
    ]


@register(TAG, Tags.urls)
def check_dashboard(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E002, E003, W002: what the dashboard's pages need once a site mounts them."""
    if not _dashboard_mounted():
        return []
    messages: list[CheckMessage] = []
    missing = [name for name in DASHBOARD_APPS if not apps.is_installed(name)]
    if missing:
        messages.append(
            Error(
                f"The jobscheduler dashboard is mounted but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not in INSTALLED_APPS.",
                hint=f"Add {', '.join(repr(n) for n in missing)} to INSTALLED_APPS: the dashboard's history "
                "table and filters are rendered with their templates.",
                id="jobscheduler.E002",
            )
        )
    try:
        reverse("logout")
    except NoReverseMatch:
        messages.append(
            Error(
                "The jobscheduler dashboard is mounted but no URL is named 'logout' (its header has a sign-out "
                "button), so every page would fail to render.",
                hint='Add path("accounts/", include("django.contrib.auth.urls")) to your URLconf, or name your '
                "own sign-out URL 'logout'.",
                id="jobscheduler.E003",
            )
        )
    if not _login_url_answers():
        messages.append(
            Warning(
                f"The jobscheduler dashboard sends signed-out viewers to LOGIN_URL ({settings.LOGIN_URL!r}), "
                "which no URL of this site answers.",
                hint='Add path("accounts/", include("django.contrib.auth.urls")) to your URLconf, or set '
                "LOGIN_URL to your sign-in page.",
                id="jobscheduler.W002",
            )
        )
    return messages


@register(TAG)
def check_settings(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E004-E014, W001: the `JOBSCHEDULER` dict and the seed's runner settings."""
    configured = getattr(settings, "JOBSCHEDULER", None) or {}
    if not isinstance(configured, dict):
        return [
            Error(
                f"settings.JOBSCHEDULER must be a dict, got {type(configured).__name__}.",
                hint='For example JOBSCHEDULER = {"LEASE_SECONDS": 60}.',
                id="jobscheduler.E005",
            )
        ]
    values = {**DEFAULTS, **configured}
    return [
        *_unknown_keys(configured),
        *_tenant_resolver(values["TENANT_RESOLVER"]),
        *_runner_type(),
        *_timings(values),
        *_numbers(values),
        *_flags(values),
        *_uuids(values),
        *_default_retry(values["DEFAULT_RETRY"]),
        *_redact_keys(values["REDACT_KEYS"]),
    ]


def _unknown_keys(configured: dict[str, Any]) -> Iterator[CheckMessage]:
    for key in sorted(set(configured) - set(DEFAULTS), key=str):
        close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
        yield Error(
            f"Unknown JOBSCHEDULER setting {key!r}.",
            hint=f"Did you mean {close[0]!r}?"
            if close
            else f"Known settings: {', '.join(sorted(DEFAULTS))}.",
            id="jobscheduler.E004",
        )


def _tenant_resolver(path: Any) -> Iterator[CheckMessage]:
    if not isinstance(path, str):
        yield Error(
            f'JOBSCHEDULER["TENANT_RESOLVER"] must be a dotted path (a string), got {path!r}.',
            hint="Give the dotted path of a function fn(request) -> tenant UUID or None.",
            id="jobscheduler.E006",
        )
        return
    try:
        resolver = import_string(path)
    except ImportError as exc:
        yield Error(
            f'JOBSCHEDULER["TENANT_RESOLVER"] {path!r} cannot be imported: {exc}',
            hint="Give the dotted path of a function fn(request) -> tenant UUID or None.",
            id="jobscheduler.E006",
        )
        return
    if not callable(resolver):
        yield Error(
            f'JOBSCHEDULER["TENANT_RESOLVER"] {path!r} is not callable.',
            hint="Give the dotted path of a function fn(request) -> tenant UUID or None.",
            id="jobscheduler.E006",
        )


def _runner_type() -> Iterator[CheckMessage]:
    kind = str(env_setting("JOB_RUNNER_TYPE")).strip().lower()
    if kind not in set(RunnerType):
        yield Error(
            f"Invalid JOB_RUNNER_TYPE {env_setting('JOB_RUNNER_TYPE')!r}.",
            hint=f"Use one of: {', '.join(sorted(RunnerType))}.",
            id="jobscheduler.E007",
        )
    elif kind == RunnerType.TEMPORAL and not is_installed(Extra.TEMPORAL):
        yield Error(
            "JOB_RUNNER_TYPE is 'temporal' but the temporalio package is not installed.",
            hint="pip install 'django-jobscheduler[temporal]'",
            id="jobscheduler.E008",
        )


def _timings(values: dict[str, Any]) -> Iterator[CheckMessage]:
    lease, heartbeat, expiry = (
        values["LEASE_SECONDS"],
        values["HEARTBEAT_SECONDS"],
        values["WORKER_EXPIRY_SECONDS"],
    )
    if not all(_is_number(v) for v in (lease, heartbeat, expiry)):
        return  # reported as E010
    if lease <= heartbeat:
        yield Error(
            f"LEASE_SECONDS ({lease:g}) must be longer than HEARTBEAT_SECONDS ({heartbeat:g}): a lease would "
            "lapse before the heartbeat that extends it, and live jobs would be rescued and run twice.",
            hint="Keep LEASE_SECONDS several heartbeats long (the defaults are 30 and 5).",
            id="jobscheduler.E009",
        )
    if expiry <= heartbeat:
        yield Warning(
            f"WORKER_EXPIRY_SECONDS ({expiry:g}) is not longer than HEARTBEAT_SECONDS ({heartbeat:g}): live "
            "workers would drop off the dashboard's workers list between heartbeats.",
            hint="Keep WORKER_EXPIRY_SECONDS several heartbeats long (the defaults are 60 and 5).",
            id="jobscheduler.W001",
        )


def _numbers(values: dict[str, Any]) -> Iterator[CheckMessage]:
    for name in POSITIVE_NUMBERS:
        if not (_is_number(values[name]) and values[name] > 0):
            yield _bad_number(name, values[name], "a number greater than 0")
    for name in NON_NEGATIVE_NUMBERS:
        if not (_is_number(values[name]) and values[name] >= 0):
            yield _bad_number(name, values[name], "a number of at least 0")
    for name in POSITIVE_INTEGERS:
        value = values[name]
        if not (_is_number(value) and isinstance(value, int) and value > 0):
            yield _bad_number(name, value, "an integer greater than 0")
    days = values["RETENTION_DAYS"]
    if days is not None and not (_is_number(days) and days > 0):
        yield _bad_number(
            "RETENTION_DAYS", days, "a number of days greater than 0, or None to keep everything"
        )


def _flags(values: dict[str, Any]) -> Iterator[CheckMessage]:
    for name in FLAGS:
        if not isinstance(values[name], bool):
            yield Error(
                f'JOBSCHEDULER["{name}"] must be True or False, got {values[name]!r}.',
                id="jobscheduler.E011",
            )


def _uuids(values: dict[str, Any]) -> Iterator[CheckMessage]:
    for name in UUIDS:
        value = values[name]
        if isinstance(value, uuid.UUID):
            continue
        try:
            uuid.UUID(str(value))
        except ValueError:
            yield Error(f'JOBSCHEDULER["{name}"] must be a UUID, got {value!r}.', id="jobscheduler.E012")


def _default_retry(value: Any) -> Iterator[CheckMessage]:
    if value is not None and not isinstance(value, RetryPolicy):
        yield Error(
            f'JOBSCHEDULER["DEFAULT_RETRY"] must be a jobscheduler.RetryPolicy or None, got {value!r}.',
            hint="For example DEFAULT_RETRY = RetryPolicy(max_attempts=5).",
            id="jobscheduler.E013",
        )


def _redact_keys(value: Any) -> Iterator[CheckMessage]:
    if (
        isinstance(value, str)
        or not isinstance(value, list | tuple)
        or not all(isinstance(k, str) for k in value)
    ):
        yield Error(
            f'JOBSCHEDULER["REDACT_KEYS"] must be a list of strings, got {value!r}.',
            id="jobscheduler.E014",
        )


def _bad_number(name: str, value: Any, wanted: str) -> CheckMessage:
    return Error(f'JOBSCHEDULER["{name}"] must be {wanted}, got {value!r}.', id="jobscheduler.E010")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dashboard_mounted() -> bool:
    """Whether the site's URLconf includes the dashboard's, at any depth."""
    return any(_is_dashboard(resolver) for resolver in _resolvers(get_resolver().url_patterns))


def _resolvers(patterns: Iterable[Any]) -> Iterator[URLResolver]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield pattern
            yield from _resolvers(pattern.url_patterns)


def _is_dashboard(resolver: URLResolver) -> bool:
    module = resolver.urlconf_name
    return getattr(module, "__name__", module) == DASHBOARD_URLCONF


def _login_url_answers() -> bool:
    """Whether LOGIN_URL names a URL of this site (another site's address, single sign-on, counts as yes)."""
    try:
        url = str(resolve_url(settings.LOGIN_URL))
    except NoReverseMatch:
        return False
    if not url.startswith("/") or url.startswith("//"):
        return True
    try:
        resolve(url.split("?", 1)[0])
    except Resolver404:
        return False
    return True
