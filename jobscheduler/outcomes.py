"""How the end of an attempt is written down: one decision, taken here for both backends.

The pgboss worker (`queue/execution.py`) and the Temporal activity (`temporal/activities.py`) describe every
attempt's end through these functions, so the same handler leaves the same `jobs` / `job_details` rows whatever
ran it:

- an error is recorded as `"Type: message"` (just `"Type"` when the message is empty), cut to
  `MAX_ERROR_CHARS`; its class name goes to `errorType` and the job page shows the text as it is;
- a traceback is cut to `MAX_TRACEBACK_CHARS`, and only an exception raised by the handler has one (a timeout,
  an unknown handler or a bad payload never ran handler code worth showing);
- a result is recorded as JSON when it is JSON (strictly: no NaN or infinity, which PostgreSQL's jsonb
  refuses), otherwise as the text of its `repr()`, cut like an error, so recording a result never fails.
"""

from __future__ import annotations

import json
import traceback as tb_module
import uuid
from datetime import datetime
from typing import Any

from .states import Outcome
from .tracking import AttemptOutcome

MAX_ERROR_CHARS = 4000
MAX_TRACEBACK_CHARS = 20000
#: The reason recorded for a cancel that names none.
DEFAULT_CANCEL_REASON = "Cancelled by request"
#: The reason a bulk cancel (`cancel_jobs`) records, on both backends.
BULK_CANCEL_REASON = "Cancelled in bulk"

_TRUNCATED = "\n...[truncated]"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def error_text(error: BaseException) -> str:
    message = str(error)
    name = type(error).__name__
    return truncate(f"{name}: {message}" if message else name, MAX_ERROR_CHARS)


def traceback_text(error: BaseException) -> str | None:
    """The formatted traceback of an exception the handler raised (None when it carries none)."""
    if error.__traceback__ is None:
        return None
    return truncate("".join(tb_module.format_exception(error)), MAX_TRACEBACK_CHARS)


def result_json(value: Any) -> str | None:
    """The handler's return value as JSON text (None for None); a value that is not JSON becomes its repr()."""
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(truncate(repr(value), MAX_ERROR_CHARS))


def result_value(value: Any) -> Any:
    """The result as recorded, as Python data (what the Temporal workflow returns beside the record)."""
    text = result_json(value)
    return None if text is None else json.loads(text)


def timeout_message(timeout_ms: int | str) -> str:
    """The message of the `JobTimeout` an attempt that outlived its handler's `timeout_ms` fails with."""
    return f"Attempt exceeded its timeout of {timeout_ms} ms"


def completed(tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, result: Any) -> AttemptOutcome:
    return AttemptOutcome(
        tenant=tenant,
        job_id=job_id,
        attempt=attempt,
        outcome=Outcome.COMPLETED,
        result_json=result_json(result),
    )


def failed(
    tenant: uuid.UUID,
    job_id: uuid.UUID,
    attempt: int,
    error: BaseException,
    *,
    will_retry: bool,
    with_traceback: bool = True,
    retry_delay_ms: float | None = None,
    next_at: datetime | None = None,
) -> AttemptOutcome:
    """A failed attempt; `will_retry` when the retry policy allows another (the job goes back to queued)."""
    return AttemptOutcome(
        tenant=tenant,
        job_id=job_id,
        attempt=attempt,
        outcome=Outcome.RETRY if will_retry else Outcome.FAILED,
        error=error_text(error),
        error_type=type(error).__name__,
        traceback=traceback_text(error) if with_traceback else None,
        retry_delay_ms=retry_delay_ms if will_retry else None,
        next_at=next_at if will_retry else None,
    )


def cancelled(
    tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, reason: str | None = None
) -> AttemptOutcome:
    """A cancelled attempt. A reason given with the cancel request, already in the record, takes precedence."""
    return AttemptOutcome(
        tenant=tenant,
        job_id=job_id,
        attempt=attempt,
        outcome=Outcome.CANCELLED,
        error=reason or DEFAULT_CANCEL_REASON,
    )
