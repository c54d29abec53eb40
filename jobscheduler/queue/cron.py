"""When a recurring schedule fires next: pure functions over cron specs, intervals and time zones.

Cron expressions are evaluated on the wall clock of the schedule's time zone, so "0 9 * * *" in Europe/Berlin
fires at 09:00 Berlin time in winter and in summer. Across DST changes (pinned by tests): a wall time that
occurs twice in the autumn fires once, at its first occurrence; a wall time skipped by the spring-forward gap
fires once, shifted forward by the gap (02:30 becomes 03:30 in Berlin). Ticks are instants (UTC) and unique
per schedule, which is what makes each tick fire once however many schedulers run.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime, timedelta

from croniter import croniter

from ..validation import cron_for_croniter


def next_cron_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of `cron` (in `timezone`) strictly after `after`, as an aware UTC datetime."""
    zone = zoneinfo.ZoneInfo(timezone)
    wall = after.astimezone(zone).replace(tzinfo=None)
    ticks = croniter(cron_for_croniter(cron), wall)
    while True:
        # Wall times map to their first occurrence; inside the repeated autumn hour that instant is already
        # past (it fired the first time round), so walk on to the first wall time that lies ahead.
        nxt = ticks.get_next(datetime).replace(tzinfo=zone, fold=0).astimezone(UTC)
        if nxt > after:
            return nxt


def next_interval_tick(anchor: datetime, interval_seconds: float, after: datetime) -> datetime:
    """The first `anchor + k * interval` strictly after `after` (k >= 1): missed ticks are skipped, not replayed."""
    step = timedelta(seconds=interval_seconds)
    if after < anchor + step:
        return anchor + step
    k = math.floor((after - anchor) / step) + 1
    return anchor + k * step


def next_tick(
    *, cron: str, interval_seconds: float | None, timezone: str, anchor: datetime, after: datetime
) -> datetime:
    if interval_seconds:
        return next_interval_tick(anchor, interval_seconds, after)
    return next_cron_tick(cron, timezone, after)
