"""Checks every schedule call makes before anything is written, each failing with a named error."""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import uuid
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter

from .conf import setting
from .exceptions import InvalidJobData, InvalidSchedule, PayloadTooLarge, TenantRequired
from .queues import check_queue_name
from .record_keys import RESERVED_METADATA_KEYS, SYSTEM_METADATA_KEYS
from .tenancy import default_tenant


def encode_data(data: Any) -> str:
    """The payload as compact JSON text, or InvalidJobData / PayloadTooLarge."""
    return _encode_data(data, setting("MAX_PAYLOAD_BYTES"))


def encode_data_many(items: Sequence[Any]) -> list[str]:
    """encode_data for each payload of a batch, in order (the limit read once)."""
    limit = setting("MAX_PAYLOAD_BYTES")
    return [_encode_data(data, limit) for data in items]


def _encode_data(data: Any, limit: int) -> str:
    if not isinstance(data, dict):
        raise InvalidJobData(f"Job data must be a JSON object (a dict), got {type(data).__name__}")
    text = _storable_json(data, "Job data")
    size = _size(text)
    if size > limit:
        raise PayloadTooLarge(size, limit)
    return text


def payload_size(data: Any) -> int:
    """The size MAX_PAYLOAD_BYTES limits: bytes of the payload's compact JSON text (the worker measures a stored
    payload the same way, whatever PostgreSQL's own text of it looks like)."""
    return _size(_COMPACT.encode(data))


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


#: Compact JSON, NaN refused. One encoder for every call: `json.dumps` with options builds a new encoder each
#: time, a third of a small payload's encoding time.
_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

#: A JSON escape of NUL that is not itself an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: A UTF-16 surrogate pair (one character to PostgreSQL), else a surrogate on its own.
_SURROGATE = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _storable_json(value: Any, what: str) -> str:
    """Compact JSON text of `value`, refusing what PostgreSQL's JSONB would refuse only at insert time, with a
    DataError that aborts the caller's transaction: a NUL character, or a lone surrogate. Python strings may
    hold one (`"\\ud800"`); JSON escapes it, and PostgreSQL accepts a surrogate escape only as half of a pair."""
    try:
        text = _COMPACT.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJobData(f"{what} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidJobData(f"{what} is nested too deeply to encode as JSON") from None
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise InvalidJobData(f"{what} contains a NUL character, which PostgreSQL JSONB cannot store")
    if "\\ud" in text:  # an escaped character from U+D000 on: maybe a surrogate, so look at the characters
        for match in _SURROGATE.finditer(json.dumps(value, ensure_ascii=False)):
            if len(match.group()) == 1:
                raise InvalidJobData(
                    f"{what} contains a lone surrogate U+{ord(match.group()):04X} (half of a UTF-16 pair), "
                    "which PostgreSQL cannot store"
                )
    return text


def _check_storable_text(value: str, what: str, error: type[Exception] = InvalidJobData) -> None:
    """A string bound for a text column (and the JSON record): no NUL, and no surrogate at all, paired or not,
    since the driver sends text as UTF-8, which cannot encode one."""
    if "\x00" in value:
        raise error(f"{what} contains a NUL character, which PostgreSQL cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(
            f"{what} contains the surrogate code point U+{ord(exc.object[exc.start]):04X}, which is not "
            "Unicode text and PostgreSQL cannot store"
        ) from None


_system_caller: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "jobscheduler_system_caller", default=False
)


@contextlib.contextmanager
def system_metadata() -> Iterator[None]:
    """Within this block the library's own schedule calls (retry, run-now, schedule ticks) may set the
    bookkeeping keys (`scheduleKey`, `retryOf`, ...) that callers' metadata may not."""
    token = _system_caller.set(True)
    try:
        yield
    finally:
        _system_caller.reset(token)


def encode_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidJobData(f"metadata must be a dict, got {type(metadata).__name__}")
    reserved = (
        RESERVED_METADATA_KEYS if _system_caller.get() else RESERVED_METADATA_KEYS | SYSTEM_METADATA_KEYS
    )
    clash = reserved.intersection(metadata)
    if clash:
        raise InvalidJobData(f"metadata keys are reserved by the job record: {', '.join(sorted(clash))}")
    _storable_json(metadata, "metadata")
    return metadata


def _as_uuid(value: Any, what: str, error: type[Exception]) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise error(f"{what} must be a UUID, got {value!r}") from None


def resolve_tenant(tenant_id: Any, data: Any) -> uuid.UUID:
    """`tenant_id`, else `data["tenantId"]`, else the default tenant; TenantRequired on a strict site."""
    if tenant_id is None and isinstance(data, dict):
        tenant_id = data.get("tenantId")
    if tenant_id in (None, ""):
        fallback = default_tenant()
        if fallback is None:
            raise TenantRequired()
        return fallback
    return _as_uuid(tenant_id, "tenant_id", TenantRequired)


def resolve_user(user_id: Any) -> uuid.UUID:
    if user_id in (None, ""):
        user_id = setting("SYSTEM_USER_ID")
    return _as_uuid(user_id, "user_id", InvalidJobData)


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not -(2**31) < priority < 2**31:
        raise InvalidJobData(f"priority must be a 32-bit integer, got {priority!r}")
    return priority


def check_singleton_key(key: Any) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > 255:
        raise InvalidJobData(
            f"singleton_key must be a non-empty string of at most 255 characters, got {key!r}"
        )
    _check_storable_text(key, "singleton_key")
    return key


def resolve_queue(queue: Any, handler_queue: str) -> str:
    """The schedule call's `queue=` when given (checked), else the handler's queue."""
    return handler_queue if queue is None else check_queue_name(queue)


def check_unique(unique: Any, *, singleton_key: str | None, run_at: datetime | None) -> Any:
    """A schedule call's uniqueness policy (see uniqueness.py), checked against the call's other options."""
    from .uniqueness import Debounce, check_policy

    policy = check_policy(unique)
    if policy is not None and singleton_key is not None:
        raise InvalidJobData("Pass singleton_key or unique, not both")
    if isinstance(policy, Debounce) and run_at is not None:
        raise InvalidJobData(
            "A Debounce policy sets the run time itself: use schedule_job, not schedule_job_at"
        )
    return policy


def check_run_at(run_at: Any) -> datetime:
    if not isinstance(run_at, datetime):
        raise InvalidSchedule(f"run_at must be a datetime, got {type(run_at).__name__}")
    if run_at.tzinfo is None or run_at.tzinfo.utcoffset(run_at) is None:
        raise InvalidSchedule("run_at must be timezone-aware (a naive datetime is ambiguous)")
    return run_at


def check_timezone(name: Any) -> zoneinfo.ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidSchedule(f"Invalid timezone: {name!r}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"Invalid timezone: {name!r}") from None


def check_cron(spec: Any) -> str | timedelta:
    """A 5-field cron, a 6-field cron with seconds first, or a positive timedelta interval."""
    if isinstance(spec, timedelta):
        if spec.total_seconds() <= 0:
            raise InvalidSchedule(f"Invalid interval: {spec!r} (must be positive)")
        return spec
    if not isinstance(spec, str):
        raise InvalidSchedule(f"Invalid cron expression: {spec!r}")
    fields = spec.split()
    if len(fields) not in (5, 6):
        raise InvalidSchedule(
            f"Invalid cron expression: {spec!r} (expected 5 fields, or 6 with seconds first)"
        )
    try:
        croniter(cron_for_croniter(spec))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSchedule(f"Invalid cron expression: {spec!r} ({exc})") from None
    return " ".join(fields)


def cron_for_croniter(spec: str) -> str:
    """croniter puts seconds last; our 6-field form (like pg-boss, Temporal) puts them first."""
    fields = spec.split()
    if len(fields) == 6:
        fields = fields[1:] + fields[:1]
    return " ".join(fields)


MAX_SCHEDULE_KEY = 200  # leaves room in 255-character ids for the backends' own prefixes


@dataclass(frozen=True, slots=True)
class RecurringSpec:
    """A validated `schedule_recurring_job` call, the same for both backends."""

    key: str
    tenant: uuid.UUID
    user: uuid.UUID
    when: str | timedelta
    metadata: dict[str, Any]
    #: The queue named by the call; None: the handler's queue when each run fires.
    queue: str | None = None

    @property
    def cron(self) -> str:
        return "" if isinstance(self.when, timedelta) else self.when

    @property
    def interval_seconds(self) -> float | None:
        return self.when.total_seconds() if isinstance(self.when, timedelta) else None


def check_recurring(
    job_name: str,
    data: Any,
    cron: Any,
    *,
    timezone: Any,
    schedule_key: Any,
    tenant_id: Any,
    user_id: Any,
    metadata: dict[str, Any] | None,
    queue: Any = None,
) -> RecurringSpec:
    from .registry import JobHandlerRegistry

    JobHandlerRegistry.get(job_name)
    encode_data(data)
    tenant = resolve_tenant(tenant_id, data)
    user = resolve_user(user_id)
    when = check_cron(cron)
    check_timezone(timezone)
    extra = encode_metadata(metadata)
    queue = None if queue is None else check_queue_name(queue)
    key = schedule_key if schedule_key is not None else f"{job_name}:{tenant}"
    if not isinstance(key, str) or not key or len(key) > MAX_SCHEDULE_KEY:
        raise InvalidSchedule(
            f"schedule_key must be a non-empty string of at most {MAX_SCHEDULE_KEY} characters: {key!r}"
        )
    _check_storable_text(key, "schedule_key", InvalidSchedule)
    return RecurringSpec(key=key, tenant=tenant, user=user, when=when, metadata=extra, queue=queue)
