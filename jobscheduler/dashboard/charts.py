"""The throughput chart as plain SVG geometry, so the page needs no charting library and works offline.

The template draws what `bar_chart` returns: one stacked bar per bucket (completed below, failed on top),
a few horizontal grid lines with their values, and sparse time labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone

from .metrics import ChartBucket

WIDTH = 720
HEIGHT = 180
LEFT = 36
BOTTOM = 22
TOP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    completed_y: float
    completed_h: float
    failed_y: float
    failed_h: float
    label: str
    title: str


@dataclass(frozen=True, slots=True)
class GridLine:
    y: float
    value: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    plot_bottom: float
    bars: list[Bar]
    grid: list[GridLine]
    empty: bool


def bar_chart(buckets: Sequence[ChartBucket]) -> Chart:
    """Geometry for stacked completed/failed bars, labelled with local times."""
    plot_h = HEIGHT - BOTTOM - TOP
    plot_w = WIDTH - LEFT - 4
    peak = max((b.completed + b.failed for b in buckets), default=0)
    scale_max = _nice_ceiling(peak)
    slot = plot_w / max(len(buckets), 1)
    gap = min(2.0, slot * 0.2)
    label_every = max(1, len(buckets) // 6)
    bars = []
    for i, bucket in enumerate(buckets):
        local = timezone.localtime(bucket.start)
        label = local.strftime("%H:%M")
        done_h = plot_h * bucket.completed / scale_max
        fail_h = plot_h * bucket.failed / scale_max
        base = TOP + plot_h
        bars.append(
            Bar(
                x=round(LEFT + i * slot + gap / 2, 2),
                width=round(slot - gap, 2),
                completed_y=round(base - done_h, 2),
                completed_h=round(done_h, 2),
                failed_y=round(base - done_h - fail_h, 2),
                failed_h=round(fail_h, 2),
                label=label if i % label_every == 0 else "",
                title=f"{label}: {bucket.completed} completed, {bucket.failed} failed",
            )
        )
    grid = [GridLine(y=round(TOP + plot_h * (1 - f), 2), value=int(scale_max * f)) for f in (0, 0.5, 1)]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        plot_bottom=TOP + plot_h,
        bars=bars,
        grid=grid,
        empty=peak == 0,
    )


def _nice_ceiling(value: int) -> int:
    """A round, even scale maximum >= value, so the middle grid line falls on a whole number."""
    value = max(value, 2)
    magnitude = 1
    while True:
        for factor in (1, 2, 4, 6, 8) if magnitude > 1 else (2, 4, 6, 8):
            if factor * magnitude >= value:
                return factor * magnitude
        magnitude *= 10
