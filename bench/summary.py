"""The printed/markdown report of one `make bench` run: the table, then the checks and extra workloads."""

from __future__ import annotations

from typing import Any

from bench.report import fastest, fmt, metrics, notes, ratio_line, table, workflow_table


def _machine(m: dict[str, Any]) -> str:
    pgs = m.get("postgres") or {}
    pg_text = ", ".join(f"{k}={v}" for k, v in sorted(pgs.items()) if k != "server_version")
    loads = " → ".join(
        "/".join(f"{x:.1f}" for x in m[key]) for key in ("loadavg_at_start", "loadavg_at_end") if m.get(key)
    )
    return (
        f"Machine: {m.get('host')}, {m.get('cpus')} vCPU, {m.get('mem_gib')} GiB, Python {m.get('python')}, "
        f"PostgreSQL {pgs.get('server_version')} ({pg_text}); load averages (1/5/15 min) at start → end "
        f"{loads}; code: {m.get('git')}"
    )


def _rows(ours: dict[str, Any], cfg: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    conc = f"1 proc, threads, concurrency {cfg.get('concurrency')}"
    rows = [("**jobscheduler (pgboss)**", conc, ours["pgboss"])]
    if ours["pgboss_2procs"].get("processing"):
        rows.append(
            (
                "jobscheduler, 2 worker processes",
                f"2 procs × concurrency {cfg.get('concurrency')}",
                ours["pgboss_2procs"],
            )
        )
    scale = ours.get("scale") or {}
    if scale.get("loaded"):
        label = f"jobscheduler, {scale['finished']:,} finished jobs in history"
        rows.append((label, conc, {"n": scale["queued"], "processing": [scale["loaded"]]}))
    t = ours.get("temporal") or {}
    if t.get("processing") is not None:
        rows.append(("jobscheduler (temporal)", f"1 proc, concurrency {cfg.get('concurrency')}", t))
    return rows


def _checks(ours: dict[str, Any]) -> list[str]:
    out = []
    for c in ours["pgboss"].get("checks") or []:
        verdict = "OK" if c["ok"] else "FAILED"
        out.append(
            f"- {c['trial']}: {verdict}: {c['completed']}/{c['expected']} jobs completed, "
            f"{c['with_startedAt_completedAt']} with startedAt ≤ completedAt, {c['execution_started_rows']} with an "
            f"execution_started row, {c['execution_completed_rows']} with execution_completed, "
            f"{c['queue_rows_left']} queue rows left"
        )
    for key in ("scale", "temporal"):
        c = (ours.get(key) or {}).get("recorded_check")
        if c:
            out.append(f"- {key}: {'OK' if c['ok'] else 'FAILED'}: {c}")
    for backend, shapes in (ours.get("workflow") or {}).items():
        for shape, res in (shapes or {}).items():
            c = res.get("check") or {}
            out.append(
                f"- workflow {shape} ({backend}): {'OK' if c.get('ok') else 'FAILED'}: {c.get('completed')}/"
                f"{res['steps']} steps completed, {c.get('started_before_a_dependency_completed')} started "
                f"before a dependency completed"
                + (f", fan-in handed {c['fan_in_results']} results" if c.get("fan_in_expected") else "")
            )
    return out


def _scale(ours: dict[str, Any]) -> list[str]:
    s = ours.get("scale")
    if not s:
        return []
    e, loaded = s["empty"], s["loaded"]
    return [
        f"- {s['queued']:,} queued jobs drained by one worker; history bulk-loaded in {s['load']['load_seconds']:.0f}s",
        ratio_line("spawn→done, with history vs empty table", loaded.get("jobs_per_s"), e.get("jobs_per_s")),
        ratio_line(
            "steady 10→90%, with history vs empty table",
            loaded.get("steady_jobs_per_s"),
            e.get("steady_jobs_per_s"),
        ),
    ]


def _memory(ours: dict[str, Any]) -> list[str]:
    m = ours.get("memory")
    if not m:
        return []
    return [
        f"- one worker, {m['done']:,}/{m['n']:,} jobs in {m['elapsed_s']:.0f}s ({fmt(m['jobs_per_s'])} jobs/s); RSS "
        f"{_mb(m.get('rss_mb_at_10pct'))} at 10%, {_mb(m.get('rss_mb_at_50pct'))} at 50%, "
        f"{_mb(m.get('rss_mb_at_end'))} at the end, max {_mb(m.get('rss_mb_max'))}; growth 10%→end "
        f"{_mb(m.get('rss_growth_mb_10pct_to_end'))}"
    ]


def _mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} MB"


def _temporal(ours: dict[str, Any], peers: dict[str, Any]) -> list[str]:
    t = ours.get("temporal")
    if not t:
        return []
    if "skipped" in t:
        return [f"- skipped: {t['skipped']}"]
    bare = peers.get("temporal")
    mine = metrics(t)
    out = [
        f"- ours: enqueue {fmt(mine['single'])}/s, drain {mine['drain_s']}/s (N={t['n']}), latency p50/p99 "
        f"{fmt(mine['p50'])} / {fmt(mine['p99'])} ms at 20 ms spacing; at 100 ms: "
        f"{_lat(t.get('latency_light'))}"
    ]
    for label, phase in (("enqueue", (t.get("enqueue") or {}).get("single")), ("drain", _first(t))):
        cost = (phase or {}).get("postgres_per_job")
        if cost:
            out.append(f"- PostgreSQL per job, {label}: {_cost(cost)}")
    if bare:
        b = metrics(bare)
        out.append(ratio_line("drain, ours ÷ bare temporalio", mine["drain"], b["drain"]))
        out.append(ratio_line("enqueue, ours ÷ bare start_workflow", mine["single"], b["single"]))
        out.append(f"- bare temporalio latency at 100 ms: {_lat(bare.get('latency_light'))}")
    else:
        out.append("- the bare temporal peer was not run in this invocation: no ratio")
    return out


def _first(res: dict[str, Any]) -> dict[str, Any] | None:
    trials = res.get("processing") or []
    return trials[0] if trials else None


def _cost(c: dict[str, Any]) -> str:
    text = (
        f"{c['commits']:.2f} commits, {c['wal_records']:.1f} WAL records, {c['wal_bytes']:.0f} WAL bytes, "
        f"{c['wal_syncs']:.3f} WAL flushes"
    )
    if c.get("wal_sync_ms"):
        text += f" ({c['wal_sync_ms'] * 1000:.0f} µs flushing)"
    if "index_entries_per_job" in c:
        text += f", {c['index_entries_per_job']:.1f} index entries"
        tables = ", ".join(
            f"{name} +{t['inserted']:.2f}/~{t['updated']:.2f}/-{t['deleted']:.2f}"
            for name, t in sorted(c.get("tables", {}).items())
        )
        text += f" (rows inserted/updated/deleted: {tables})" if tables else ""
    return text


def _lat(lat: dict[str, Any] | None) -> str:
    if not lat or not lat.get("n"):
        return "n/a"
    return f"p50/p95/p99 {lat['p50_ms']:.1f} / {lat['p95_ms']:.1f} / {lat['p99_ms']:.1f} ms"


def _profile(ours: dict[str, Any]) -> list[str]:
    p = ours.get("profile")
    if not p:
        return []
    out = []
    e = p.get("enqueue") or {}
    if e.get("single_per_job"):
        rate = (e.get("single") or {}).get("jobs_per_s")
        out.append(
            f"- one-by-one enqueue, profiled ({fmt(rate)} jobs/s under tracing), per job: {_cost(e['single_per_job'])}"
        )
    if e.get("bulk_per_job"):
        rate = (e.get("bulk") or {}).get("jobs_per_s")
        out.append(f"- bulk enqueue ({fmt(rate)} jobs/s), per job: {_cost(e['bulk_per_job'])}")
    for s in (e.get("statements") or [])[:5]:
        out.append(
            f"  - enqueue SQL {s['share_pct']}% ({s['total_ms']:.0f} ms, {s['calls']} calls): `{s['statement'][:120]}`"
        )
    spy = e.get("py_spy") or {}
    if spy.get("self"):
        out.append(f"  - enqueue py-spy ({spy['samples']} samples), top self time:")
        out.extend(f"    - {pct}% {fn}" for fn, pct in spy["self"][:8])
    d = p.get("drain_raw") or {}
    per = d.get("per_job") or {}
    if per:
        out.append(f"- profiled drain ({fmt(d.get('jobs_per_s'))} jobs/s), per job: {_cost(per)}")
    spy = p.get("py_spy") or {}
    if spy.get("self"):
        out.append(
            f"  - drain py-spy ({spy['samples']} samples after start-up, {spy.get('startup_samples', 0)} "
            "while importing), top self time:"
        )
        out.extend(f"    - {pct}% {fn}" for fn, pct in spy["self"][:10])
        out.append("  - top inclusive:")
        out.extend(f"    - {pct}% {fn}" for fn, pct in spy["inclusive"][:12])
    for s in (p.get("statements") or [])[:8]:
        out.append(
            f"  - drain SQL {s['share_pct']}% ({s['total_ms']:.0f} ms, {s['calls']} calls): `{s['statement'][:120]}`"
        )
    if p.get("flamegraph"):
        out.append(f"- flame graph of a drain: bench/results/{p['flamegraph']}")
    if p.get("note"):
        out.append(f"- {p['note']}")
    return out


def _dashboard(ours: dict[str, Any]) -> list[str]:
    d = ours.get("dashboard")
    if not d:
        return []
    out = [f"- {d['rows']:,} jobs in one tenant; median / worst of {d['repeat']} renders (ms):"]
    for page, states in d["pages"].items():
        cells = ", ".join(f"{state} {v['median_ms']:.1f} / {v['max_ms']:.0f}" for state, v in states.items())
        out.append(f"  - {page}: {cells}")
    return out


def _targets(ours: dict[str, Any], peers: dict[str, Any]) -> list[str]:
    """Issue 14's targets, each as measured in this run (ratios within the run; the machine is noisy)."""
    queues = {k: v for k, v in peers.items() if k != "temporal"}
    if not queues:
        return []
    best, m = fastest(queues), metrics(ours["pgboss"])
    rows = [
        ("enqueue one by one ≥ 1× the fastest peer", m["single"], best["single"], 1.0, False),
        ("bulk enqueue ≥ 1.5×", m["bulk"], best["bulk"], 1.5, False),
        ("drain, one worker process ≥ 2×", m["drain"], best["drain"], 2.0, False),
        ("latency p50 ≤ the fastest peer's", m["p50"], best["p50"], 1.0, True),
        ("latency p99 ≤ the fastest peer's", m["p99"], best["p99"], 1.0, True),
    ]
    t, bare = ours.get("temporal") or {}, peers.get("temporal")
    if t.get("processing") is not None and bare:
        tm, bm = metrics(t), metrics(bare)
        rows.append(("Temporal backend drain ≥ 0.77× bare temporalio", tm["drain"], bm["drain"], 0.77, False))
        rows.append(
            ("Temporal backend starts ≥ 0.77× bare start_workflow", tm["single"], bm["single"], 0.77, False)
        )
    out = []
    for label, value, ref, goal, lower in rows:
        if value is None or not ref:
            out.append(f"- {label}: n/a")
            continue
        r = value / ref
        met = r <= goal if lower else r >= goal
        out.append(f"- {label}: **{r:.2f}×** ({'met' if met else 'not met'})")
    scale = ours.get("scale") or {}
    if scale.get("ratio_jobs_per_s"):
        r = scale["ratio_jobs_per_s"]
        out.append(
            f"- scale: claim+complete beside the history ≥ 0.8× empty: **{r:.2f}×** ({'met' if r >= 0.8 else 'not met'})"
        )
    mem = ours.get("memory") or {}
    if mem.get("rss_growth_mb_10pct_to_end") is not None:
        out.append(
            f"- worker RSS over {mem['n']:,} jobs: {mem['rss_growth_mb_10pct_to_end']:+.1f} MB from 10% to the end"
        )
    overview = ((ours.get("dashboard") or {}).get("pages") or {}).get("overview", {})
    if overview.get("hour"):
        rows_, hour = ours["dashboard"]["rows"], overview["hour"]["median_ms"]
        met = "met" if hour <= 100 else "not met"
        out.append(
            f"- first overview of the hour ≤ 100 ms ({rows_:,} jobs): {hour:.1f} ms ({met}); "
            f"the first of the day or of a process: {overview['cold']['median_ms']:.1f} ms"
        )
    return out


#: The workloads with a line or a column in the main table; a run of none of them (say, only `workflow`)
#: prints no main table and no targets rather than a table of n/a and "failed".
MAIN_TABLE_WORKLOADS = {"enqueue", "drain", "latency", "scale", "temporal"}


def _main_table_ran(cfg: dict[str, Any]) -> bool:
    return "workloads" not in cfg or bool(MAIN_TABLE_WORKLOADS & set(cfg["workloads"]))


def render(result: dict[str, Any]) -> str:
    ours = result.get("ours") or {}
    peers = result.get("peers") or {}
    cfg = result.get("config") or {}
    main = _main_table_ran(cfg)
    parts = []
    if result.get("machine"):
        parts.append(_machine(result["machine"]))
    if ours and main:
        parts.append(table(_rows(ours, cfg), {k: v for k, v in peers.items() if k != "temporal"}))
        parts.append(
            "Ratios (bold) are against the fastest peer in the same column, measured in this run (bare Temporal "
            "excluded; it is compared with our Temporal backend below). Rates: above 1× is faster. Latency: "
            "below 1× is better."
        )
    if ours:
        celery = (peers.get("celery") or {}).get("workflow")
        wf = workflow_table(ours.get("workflow") or {}, celery)
        if wf:
            parts.append(wf)
            parts.append(
                "Workflows: steps ÷ (the call that schedules the whole graph → a poll every "
                f"{(ours.get('settings') or {}).get('wf_poll_s', 0) * 1000:.0f} ms sees the last step done), one "
                "warmed-up worker like the drain's; ours records every step in `jobs`, Celery stores every "
                "result in Redis (no persistence). See docs/performance.md."
            )
    parts.append(
        notes(
            [
                (
                    "Targets of the performance issue, in this run",
                    lambda: _targets(ours, peers) if ours and main else [],
                ),
                ("Every job fully recorded", lambda: _checks(ours) if ours else []),
                ("Scale: claim + complete beside a big history", lambda: _scale(ours) if ours else []),
                ("Worker memory over a long run", lambda: _memory(ours) if ours else []),
                ("Temporal backend vs bare temporalio", lambda: _temporal(ours, peers) if ours else []),
                ("Dashboard", lambda: _dashboard(ours) if ours else []),
                ("Where the time goes: enqueue and drain profiles", lambda: _profile(ours) if ours else []),
                ("Errors", lambda: [f"- {e}" for e in result.get("errors") or []]),
                ("Peer notes", lambda: _peer_notes(peers)),
            ]
        )
    )
    return "\n\n".join(p for p in parts if p)


def _peer_notes(peers: dict[str, Any]) -> list[str]:
    out = []
    for name, r in peers.items():
        for e in r.get("errors") or []:
            out.append(f"- {name}: ERROR {e}")
        for n in r.get("notes") or []:
            out.append(f"- {name}: {n}")
    return out
