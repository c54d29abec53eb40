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


def _wf(steps: int, rate: float, ok: bool = True, **size: int) -> dict:
    return {
        "steps": steps,
        "steps_per_s": rate,
        "elapsed_s": steps / rate,
        "timeout": False,
        "check": {"ok": ok},
    } | size


def test_workflow_table_has_one_line_per_shape_with_ours_celerys_and_the_ratio() -> None:
    ours = {
        "pgboss": {"fan_out": _wf(1001, 2000.0, width=1000), "chain": _wf(200, 40.0, length=200)},
        "temporal": {"fan_out": _wf(201, 5.0, width=200), "chain": _wf(50, 2.5, length=50)},
    }
    celery = {"fan_out": _wf(1001, 500.0, width=1000), "chain": _wf(200, 80.0, length=200)}
    lines = report.workflow_table(ours, celery).splitlines()
    assert len(lines) == 4
    assert lines[2] == (
        "| wide fan-out: 1,000 steps + 1 fan-in | 1,001 | 2,000 | 500 | **4.00×** | 5.0 (201 steps) |"
    )
    assert lines[3] == "| long chain: 200 steps | 200 | 40.0 | 80.0 | **0.50×** | 2.5 (50 steps) |"


def test_workflow_table_gives_no_ratio_for_a_failed_check_or_a_timeout() -> None:
    timed_out = {
        "steps": 200,
        "steps_per_s": None,
        "elapsed_s": 600.4,
        "timeout": True,
        "check": {"ok": False},
    }
    ours = {"pgboss": {"fan_out": _wf(201, 300.0, ok=False, width=200), "chain": _wf(50, 30.0, length=50)}}
    celery = {"fan_out": _wf(201, 30.0, width=200), "chain": timed_out | {"steps": 50}}
    lines = report.workflow_table(ours, celery).splitlines()
    assert lines[2] == "| wide fan-out: 200 steps + 1 fan-in | 201 | 300 (check FAILED) | 30.0 | n/a | n/a |"
    assert lines[3] == "| long chain: 50 steps | 50 | 30.0 | timed out after 600 s | n/a | n/a |"


def test_no_workflow_table_when_the_workload_did_not_run() -> None:
    assert report.workflow_table({}, None) == ""
    assert report.workflow_table({"pgboss": None}, {}) == ""


def test_the_report_lists_each_workflow_check() -> None:
    from bench import summary

    check = {"ok": True, "completed": 201, "started_before_a_dependency_completed": 0}
    fan_out = _wf(201, 200.0, width=200) | {"check": check | {"fan_in_results": 200, "fan_in_expected": 200}}
    ours = {"pgboss": {"checks": []}, "workflow": {"pgboss": {"fan_out": fan_out}}}
    assert summary._checks(ours) == [
        "- workflow fan_out (pgboss): OK: 201/201 steps completed, 0 started before a dependency completed, "
        "fan-in handed 200 results"
    ]


def test_a_workflow_only_run_prints_the_workflow_table_and_no_main_table_of_na() -> None:
    from bench import summary

    ours = {
        "pgboss": {"checks": [], "enqueue": {}, "processing": []},
        "pgboss_2procs": {},
        "workflow": {"pgboss": {"chain": _wf(50, 60.0, length=50)}},
        "settings": {"wf_poll_s": 0.01},
    }
    peers = {"celery": {"enqueue": {}, "processing": [], "workflow": {"chain": _wf(50, 50.0, length=50)}}}
    text = summary.render({"config": {"workloads": ["peers", "workflow"]}, "ours": ours, "peers": peers})
    assert "| system |" not in text and "Targets of the performance issue" not in text
    assert "| long chain: 50 steps | 50 | 60.0 | 50.0 | **1.20×** | n/a |" in text
    assert "a poll every 10 ms sees the last step done" in text
