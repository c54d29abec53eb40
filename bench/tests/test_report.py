from __future__ import annotations

from bench import report


def _result(single: float, drain: list[float], p50: float) -> dict:
    return {
        "n": 10,
        "enqueue": {"single": {"jobs_per_s": single}},
        "processing": [{"jobs_per_s": d, "steady_jobs_per_s": d} for d in drain],
        "latency": {"n": 200, "expected": 200, "p50_ms": p50, "p95_ms": p50, "p99_ms": p50},
    }


def test_ratios_are_against_the_fastest_peer_per_column() -> None:
    peers = {"pgqueuer": _result(2000, [3000, 3500], 4.0), "celery": _result(1000, [700], 3.0)}
    best = report.fastest(peers)
    assert best["single"] == 2000 and best["drain"] == 3500 and best["p50"] == 3.0
    text = report.table([("ours", "1 proc", _result(1000, [7000], 1.5))], peers)
    ours = text.splitlines()[2]
    assert "1,000 **0.50×**" in ours  # enqueue: half the fastest peer
    assert "7,000 **2.00×**" in ours  # drain: twice the best trial of any peer
    assert "1.5 (p95 1.5) **0.50×**" in ours  # latency: half the lowest p50


def test_a_timed_out_trial_is_not_compared() -> None:
    res = _result(100, [50], 1.0)
    res["processing"][0]["timeout"] = True
    assert report.metrics(res)["drain"] is None
