"""Small display helpers shared by the table, the templates and the admin."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

#: Characters of a job id that tell it apart. A UUIDv7 opens with its creation time in milliseconds, so ids
#: made within weeks of each other share their first eight characters; the last group is 48 random bits.
ID_TAIL = 12


def format_duration(value: timedelta | None) -> str:
    """'850 ms', '12.4 s', '3 min 05 s', '2 h 07 min': precise for short jobs, readable for long ones."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 0:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def meta_time(meta: dict[str, Any], key: str) -> datetime | None:
    """A timestamp stored as ISO-8601 text in `jobs.metadata`, or None."""
    value = meta.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def short_job_id(job_id: Any) -> SafeString:
    """The distinguishing tail of a job id, for lists where every id starts the same, and a button that puts
    the whole id on the clipboard (live.js)."""
    text = str(job_id)
    return format_html(
        '<span class="job-id" title="{0}">…{1}</span><button type="button" class="copy" data-copy="{0}" '
        'title="Copy the whole job id" aria-label="Copy job id {0}">copy</button>',
        text,
        text[-ID_TAIL:],
    )


def full_job_id(job_id: Any) -> SafeString:
    """The whole id where there is room (the admin): one click selects all of it, its distinguishing tail in
    bold. Styled inline because the admin does not load the dashboard's stylesheet."""
    text = str(job_id)
    return format_html(
        '<span class="job-id" style="user-select: all; white-space: nowrap; font-family: monospace">{}<b>{}</b>'
        "</span>",
        text[:-ID_TAIL],
        text[-ID_TAIL:],
    )


def error_line(error: Any, error_type: Any) -> str:
    """An attempt's error as one line of text: `"Type: message"`. The record stores it so already; older records
    (and AttemptLost/WorkflowClosed ones written by the library) may hold the bare message, which gets its type."""
    text = "" if error is None else str(error)
    kind = "" if error_type is None else str(error_type)
    if not kind or text == kind or text.startswith(f"{kind}: "):
        return text
    return f"{kind}: {text}" if text else kind
