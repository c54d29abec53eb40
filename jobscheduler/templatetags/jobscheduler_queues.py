"""Filters of the Queues page: ages, run times and rates, readable at a glance."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template

from ..dashboard.formatting import format_duration

register = template.Library()


@register.filter
def age(since: datetime | None, now: datetime | None) -> str:
    """How long ago `since` was, as of `now` ('—' without one)."""
    if since is None or now is None:
        return "—"
    return format_duration(max(timedelta(0), now - since))


@register.filter
def seconds(value: float | None) -> str:
    return "—" if value is None else format_duration(timedelta(seconds=value))


@register.filter
def per_minute(figures: Any, minutes: int) -> str:
    """Jobs finished (completed or failed) per minute over the window."""
    done = figures.completed + figures.failed
    return "0" if not done else f"{done / minutes:.1f}"
