"""Rate limits: how they are spelled, and when a full window lets the next job start (pure logic)."""

import pytest

from jobscheduler.exceptions import InvalidQueue
from jobscheduler.queue.producer import rate_wait
from jobscheduler.queues import RATE_BUCKETS, RateLimit, parse_rate


@pytest.mark.parametrize(
    "text, starts, seconds, spelled",
    [
        ("10/s", 10, 1.0, "10/s"),
        (" 100 / m ", 100, 60.0, "100/m"),
        ("1000/h", 1000, 3600.0, "1000/h"),
        ("5/10s", 5, 10.0, "5/10s"),
        ("2/0.5s", 2, 0.5, "2/0.5s"),
        ("3/1d", 3, 86400.0, "3/d"),
    ],
)
def test_rates_are_starts_per_period(text, starts, seconds, spelled):
    rate = parse_rate(text)
    assert rate == RateLimit(starts, seconds)
    assert str(rate) == spelled
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["", "10", "10/x", "0/s", "ten/s", "1/0.05s", "1/8d", "2000000/s", 10, 1.5])
def test_a_bad_rate_says_how_to_spell_one(text):
    with pytest.raises(InvalidQueue) as err:
        parse_rate(text)
    assert str(err.value) == (
        "rate_limit must be starts per period like '10/s', '100/m', '1000/h' or '5/10s' (1 to 1000000 "
        f"starts, a period of 0.1 s to 7 days) or None, got {text!r}"
    )


def test_none_is_no_limit():
    assert parse_rate(None) is None


def window(now: float, period: float, **starts_at_offsets: int) -> dict[str, int]:
    """{bucket: starts} for starts made `offset` buckets before the current one."""
    current = int(now // (period / RATE_BUCKETS))
    return {str(current - int(k[1:])): n for k, n in starts_at_offsets.items()}


def test_a_window_with_room_needs_no_wait():
    now, period = 1000.0, 1.0
    assert rate_wait([(5, period, window(now, period, b0=4), now)]) is None
    assert rate_wait([]) is None


def test_a_full_window_frees_a_start_when_its_oldest_bucket_leaves():
    now, period = 1000.02, 1.0  # 0.02 s into a bucket of 0.05 s
    width = period / RATE_BUCKETS
    full = window(now, period, b10=3, b0=2)  # 3 starts ten buckets ago, 2 in the current one: 5 of 5
    wait = rate_wait([(5, period, full, now)])
    # the bucket ten back stops counting when bucket (current - 10) + 21 begins: 11 buckets from the current's start
    assert wait == pytest.approx((int(now // width) + 11) * width - now)
    assert 0.5 < wait < 0.6


def test_buckets_out_of_reach_are_ignored_and_the_soonest_queue_wins():
    now, period = 500.0, 10.0
    stale = window(now, period, b25=50, b3=2)  # the 50 starts are out of reach: 2 of 2 count
    slow = window(now, 60.0, b1=100)
    waits = rate_wait([(2, period, stale, now), (100, 60.0, slow, now)])
    width = period / RATE_BUCKETS
    assert waits == pytest.approx((int(now // width) - 3 + RATE_BUCKETS + 1) * width - now)
