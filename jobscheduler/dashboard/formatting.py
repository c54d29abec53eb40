"""Small display helpers shared by the table, the templates and the admin."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime


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
