"""Next-tick arithmetic, including the DST rules the docs promise."""

from datetime import UTC, datetime, timedelta

from jobscheduler.queue.cron import next_cron_tick, next_interval_tick


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_cron_in_the_schedules_timezone():
    # 09:00 Berlin is 07:00 UTC in summer and 08:00 UTC in winter
    assert next_cron_tick("0 9 * * *", "Europe/Berlin", utc(2026, 7, 1)) == utc(2026, 7, 1, 7)
    assert next_cron_tick("0 9 * * *", "Europe/Berlin", utc(2026, 12, 1)) == utc(2026, 12, 1, 8)


def test_six_fields_put_seconds_first():
    assert next_cron_tick("*/10 * * * * *", "UTC", utc(2026, 7, 1, 0, 0, 5)) == utc(2026, 7, 1, 0, 0, 10)


def test_autumn_repeated_hour_fires_once():
    first = next_cron_tick("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first of the two 02:30s
    assert next_cron_tick("30 2 * * *", "Europe/Berlin", first) == utc(2026, 10, 26, 1, 30)


def test_spring_gap_shifts_forward():
    # 02:30 does not exist on 2026-03-29 in Berlin; it fires at 03:30 CEST (01:30 UTC), once
    tick = next_cron_tick("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12))
    assert tick == utc(2026, 3, 29, 1, 30)
    assert next_cron_tick("30 2 * * *", "Europe/Berlin", tick) == utc(2026, 3, 30, 0, 30)


def test_hourly_cron_across_the_autumn_change_never_repeats_an_instant():
    ticks, t = [], utc(2026, 10, 24, 22)
    for _ in range(6):
        t = next_cron_tick("0 * * * *", "Europe/Berlin", t)
        ticks.append(t)
    assert ticks == sorted(set(ticks))


def test_interval_skips_missed_ticks():
    anchor = utc(2026, 1, 1)
    assert next_interval_tick(anchor, 60, anchor) == anchor + timedelta(minutes=1)
    # an hour of downtime: the next tick is the first one after now, not the 60 missed ones
    assert next_interval_tick(anchor, 60, anchor + timedelta(minutes=60, seconds=5)) == anchor + timedelta(
        minutes=61
    )
