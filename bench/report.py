"""One table: our figures, each peer's, and every figure's ratio to the fastest peer in its column.

Rates: ratio = value ÷ best peer value (above 1 is faster). Latency: ratio = value ÷ lowest peer latency
(below 1 is better). Where a row has two processing trials, the better one is compared, for us and peers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _rate(res: Row, key: str) -> float | None:
    e = (res.get("enqueue") or {}).get(key)
    return e.get("jobs_per_s") if e else None


def _best(values: list[float | None], lower_is_better: bool = False) -> float | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return min(vals) if lower_is_better else max(vals)


def metrics(res: Row) -> dict[str, Any]:
    """The comparable numbers of one result (ours or a peer's JSON, same shape)."""
    proc = [t for t in res.get("processing") or [] if not t.get("timeout")]
    lat = res.get("latency") or {}
    return {
        "single": _rate(res, "single"),
        "bulk": _rate(res, "bulk"),
        "bulk_other": _rate(res, "bulk_group") or _rate(res, "concurrent"),
        "drain": _best([t.get("jobs_per_s") for t in proc]),
        "drain_s": " / ".join(fmt(t.get("jobs_per_s")) for t in res.get("processing") or []) or "failed",
        "steady": _best([t.get("steady_jobs_per_s") for t in proc]),
        "steady_s": " / ".join(fmt(t.get("steady_jobs_per_s")) for t in res.get("processing") or []) or "-",
        "p50": lat.get("p50_ms"),
        "p95": lat.get("p95_ms"),
        "p99": lat.get("p99_ms"),
        "lat_seen": f" ({lat['n']}/{lat['expected']} seen)"
        if lat.get("n", 0) < lat.get("expected", 0)
        else "",
    }


COLUMNS: list[tuple[str, str, bool]] = [
    ("single", "enqueue 1-by-1 (jobs/s)", False),
    ("bulk", "bulk enqueue, chunks of 1,000 (jobs/s)", False),
    ("drain", "drain N, spawn→all done (jobs/s; trial 1 / trial 2)", False),
    ("steady", "steady 10→90% (jobs/s)", False),
    ("p50", "latency p50 (ms)", True),
    ("p99", "latency p99 (ms)", True),
]


def fastest(peers: dict[str, Row]) -> dict[str, float | None]:
    ms = [metrics(r) for r in peers.values()]
    return {key: _best([m[key] for m in ms], low) for key, _, low in COLUMNS}


def _cell(m: dict[str, Any], key: str, best: float | None) -> str:
    v = m.get(key)
    if key == "drain":
        text = m["drain_s"]
    elif key == "steady":
        text = m["steady_s"]
    elif key in ("p50", "p99"):
        text = "n/a" if v is None else f"{v:.1f}" + (f" (p95 {m['p95']:.1f})" if key == "p50" else "")
        text += m["lat_seen"] if key == "p99" else ""
    elif key == "bulk" and v is None and m.get("bulk_other"):
        return fmt(m["bulk_other"]) + " (not a bulk API)"
    else:
        text = fmt(v) if v is not None else "n/a"
    if v is not None and best:
        text += f" **{v / best:.2f}×**"
    return text


def table(rows: list[tuple[str, str, Row]], peers: dict[str, Row]) -> str:
    """rows: (label, concurrency, result) for our lines; peers are appended in the harness's order."""
    best = fastest(peers)
    head = "| system | N | worker | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    all_rows = list(rows) + [
        (name, (r.get("settings") or {}).get("concurrency_short", "?"), r) for name, r in _ordered(peers)
    ]
    for label, conc, res in all_rows:
        m = metrics(res)
        cells = [_cell(m, key, best[key]) for key, _, _ in COLUMNS]
        lines.append(f"| {label} | {res.get('n', '')} | {conc} | " + " | ".join(cells) + " |")
    best_line = " | ".join(fmt(best[k]) if best[k] is not None else "n/a" for k, _, _ in COLUMNS)
    lines.append(f"| *fastest peer per column* | | | {best_line} |")
    return "\n".join(lines)


PEER_ORDER = [
    "pgqueuer",
    "procrastinate",
    "chancy",
    "django-q2",
    "django-q2 (save_limit=0)",
    "django-tasks",
    "celery",
]


def _ordered(peers: dict[str, Row]) -> list[tuple[str, Row]]:
    names = [p for p in PEER_ORDER if p in peers] + sorted(set(peers) - set(PEER_ORDER))
    return [(n, peers[n]) for n in names]


def ratio_line(label: str, value: float | None, ref: float | None, unit: str = "jobs/s") -> str:
    if value is None or not ref:
        return f"- {label}: n/a"
    return f"- {label}: {fmt(value)} vs {fmt(ref)} {unit} = **{value / ref:.2f}×**"


def notes(sections: list[tuple[str, Callable[[], list[str]]]]) -> str:
    out: list[str] = []
    for title, make in sections:
        lines = make()
        if lines:
            out.append(f"\n**{title}**\n")
            out.extend(lines)
    return "\n".join(out)


#: The workflow workload's shapes, in table order (bench/workflow_bench.py).
WORKFLOW_SHAPES = ("fan_out", "chain")


def _shape_label(shape: str, res: Row) -> str:
    if shape == "fan_out":
        return f"wide fan-out: {res['width']:,} steps + 1 fan-in"
    return f"long chain: {res['length']:,} steps"


def _usable(res: Row | None) -> bool:
    """A figure that can be compared: measured to the end, and its check passed."""
    return bool(res) and not res.get("timeout") and bool((res.get("check") or {}).get("ok"))


def _wf_cell(res: Row | None, steps: int | None = None) -> str:
    """steps/s; the step count when it differs from the row's; why there is no figure, or that it is suspect."""
    if not res:
        return "n/a"
    if res.get("timeout"):
        return f"timed out after {res['elapsed_s']:.0f} s"
    text = fmt(res["steps_per_s"])
    if steps is not None and res["steps"] != steps:
        text += f" ({res['steps']:,} steps)"
    if not (res.get("check") or {}).get("ok"):
        text += " (check FAILED)"
    return text


def workflow_table(ours: Row, celery: Row | None) -> str:
    """Steps per second of each workflow shape: ours on pgboss, Celery's canvas of the same size and the ratio
    (above 1× is faster), and our Temporal backend at its own size. '' when no side ran the workload."""
    pgboss, temporal, peer = ours.get("pgboss") or {}, ours.get("temporal") or {}, celery or {}
    lines = [
        "| workflow | steps | jobscheduler (pgboss) (steps/s) | Celery chord / chain (steps/s) "
        "| pgboss ÷ Celery | jobscheduler (temporal) (steps/s) |",
        "|---|---|---|---|---|---|",
    ]
    for shape in WORKFLOW_SHAPES:
        mine, theirs, tmp = pgboss.get(shape), peer.get(shape), temporal.get(shape)
        ref = mine or theirs or tmp
        if not ref:
            continue
        same_size = bool(mine and theirs) and mine["steps"] == theirs["steps"]
        ratio = (
            f"**{mine['steps_per_s'] / theirs['steps_per_s']:.2f}×**"
            if same_size and _usable(mine) and _usable(theirs)
            else "n/a"
        )
        lines.append(
            f"| {_shape_label(shape, ref)} | {ref['steps']:,} | {_wf_cell(mine)} | "
            f"{_wf_cell(theirs, ref['steps'])} | {ratio} | {_wf_cell(tmp, ref['steps'])} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""
