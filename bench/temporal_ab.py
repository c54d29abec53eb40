"""The Temporal workload alone: our Temporal backend and bare temporalio, round after round, with CPU per job.

`make bench` measures our Temporal backend once beside everything else; tuning it wants the two halves of its
ratio measured again and again, close together. Each round runs, each on a fresh in-memory dev server, (1) N
`schedule_job` calls one after another, then one `runjobworker --backend temporal` draining them (done =
`jobs.status = 'completed'`; every job is checked fully recorded afterwards), and (2) N bare `start_workflow()`
calls, then one bare worker (bench/peers/temporal_worker.py, SDK defaults) draining them (done =
`count_workflows(Completed)`): the definitions of workload (e) of bench/run.py, without its latency phases.
Bare Temporal runs in this interpreter: the bench virtualenv pins the same temporalio.

Rates on a machine shared with other work swing by 2x from one minute to the next, so each phase also reports
the CPU time it cost, per job, of every process doing its work: the driver (enqueue), the worker (drain), the
Temporal dev server, and PostgreSQL (ours only; all its processes), less what the two servers burn idle
(measured for BENCH_AB_IDLE_SECONDS, 3, before each phase). CPU per job moves far less with the load than a
rate does, and "within 1.3x the cost of bare Temporal" is a statement about it.

    .venv/bin/python -m bench.temporal_ab     # BENCH_AB_ROUNDS (3) rounds of BENCH_N_TEMPORAL (500) jobs

`BENCH_AB_PROFILE=1` runs the first round of ours under py-spy (the driver while it enqueues, the worker while
it drains) with every statement logged by the server. Prints one line per phase and the medians; the JSON goes
to bench/results/temporal-ab-<time>.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import config

os.environ.setdefault("BENCH_N_TEMPORAL", "500")
config.apply_defaults()

from bench import djsetup, measure, pg, procs, profiling, services, temporal_bench, workloads  # noqa: E402
from bench.db import Db  # noqa: E402
from bench.peers import harness, temporal_driver  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", "3"))
PROFILE = os.environ.get("BENCH_AB_PROFILE", "") not in ("", "0")
TICK = os.sysconf("SC_CLK_TCK")
#: Seconds each phase first watches the servers idle, to take their idle CPU off the phase's cost.
IDLE_SECONDS = float(os.environ.get("BENCH_AB_IDLE_SECONDS", "3"))


def _proc_cpu() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process on the machine."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return out


def _tree_cpu(roots: list[int]) -> float:
    """CPU seconds of `roots` and all their descendants alive now."""
    table = _proc_cpu()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, list(roots)
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
            todo.extend(children.get(pid, []))
    return total


class Meter:
    """CPU seconds spent by the driver (this process) and the given process trees between two snapshots, less
    what the servers burn when idle (timers, background work): a slower phase would otherwise be charged more
    of it per job, whatever its own cost."""

    def __init__(self, **trees: Callable[[], list[int]]) -> None:
        self.trees = trees
        self.before: dict[str, float] = {}
        self.idle: dict[str, float] = {}

    def snapshot(self) -> dict[str, float]:
        now = {name: _tree_cpu(pids()) for name, pids in self.trees.items()}
        now["driver"] = time.process_time()
        now["at"] = time.monotonic()
        return now

    def calibrate(self, seconds: float = IDLE_SECONDS) -> None:
        """Measure each tree's idle CPU rate (the servers', before the phase starts work)."""
        before = self.snapshot()
        time.sleep(seconds)
        after = self.snapshot()
        self.idle = {name: (after[name] - before[name]) / seconds for name in self.trees}

    def start(self) -> None:
        self.before = self.snapshot()

    def stop(self, n: int, since: dict[str, float] | None = None) -> dict[str, float]:
        """CPU milliseconds per job of each part since start (or `since`), idle burn taken off, and their sum."""
        before, after = since or self.before, self.snapshot()
        elapsed = after["at"] - before["at"]
        per_job = {}
        for name in after:
            if name == "at":
                continue
            used = after[name] - before.get(name, 0.0) - self.idle.get(name, 0.0) * elapsed
            per_job[name] = round(1000 * max(used, 0.0) / n, 2)
        per_job["total"] = round(sum(per_job.values()), 2)
        return per_job


def _postmaster(cluster: pg.Cluster) -> list[int]:
    return [int((cluster.data / "postmaster.pid").read_text().split()[0])]


def _drain(
    spawn: Callable[[], subprocess.Popen], count: Callable[[], int], n: int, meter: Meter, raw: Path | None
) -> dict[str, Any]:
    """Spawn one worker on N queued jobs; the time to all done, and CPU per job (read before the worker stops):
    from the spawn (the worker's start-up included, as the rate includes it) and from the first job done."""
    meter.calibrate()
    meter.start()
    t_spawn = time.monotonic()
    worker = spawn()
    meter.trees["worker"] = lambda: [worker.pid]
    first: dict[str, Any] = {}

    def counted() -> int:
        done = count()
        if done and not first:
            first.update(done=done, cpu=meter.snapshot())
        return done

    try:
        with _spy(worker.pid, raw):
            out = measure.wait_progress(
                procs.guarded_counter(counted, n, [worker]), n, measure.PROC_TIMEOUT, "drain", t_start=t_spawn
            )
            out["cpu_ms_per_job"] = meter.stop(n)
            if first and first["done"] < n:
                out["steady_cpu_ms_per_job"] = meter.stop(n - first["done"], since=first["cpu"])
    finally:
        procs.stop(worker)
    return out


def _spy(pid: int, raw: Path | None) -> contextlib.AbstractContextManager:
    if raw is None:
        return contextlib.nullcontext()
    return profiling.py_spy(pid, ["--format", "raw", "-o", str(raw)], f"temporal-ab-{raw.stem}")


def _profiled(
    cluster: pg.Cluster, cfg: config.Config, label: str, work: Callable[[Path | None], dict]
) -> dict:
    if not PROFILE:
        return work(None)
    raw = config.RESULTS_DIR / f"temporal-ab-{label}.raw.txt"
    offset = cluster.log.stat().st_size
    with profiling.server_tracing(cfg.pg_port):
        out = work(raw)
    out["statements"] = profiling.statements(cluster.log, offset, limit=15)
    if raw.exists():
        out["py_spy"] = profiling.top_functions(raw, limit=40)
    return out


def _ours(cfg: config.Config, cluster: pg.Cluster, db: Db, profile: bool) -> dict[str, Any]:
    from django.test import override_settings

    n = cfg.n_temporal
    overrides = {
        "JOB_RUNNER_TYPE": "temporal",
        "TEMPORAL_ADDRESS": config.temporal_address(),
        "JOB_RUNNER_FALLBACK_TO_PGBOSS": False,
    }
    with services.TemporalDevServer(temporal_bench.TEMPORAL_CLI, config.temporal_port()) as server:
        meter = Meter(temporal=lambda: [server.proc.pid], postgres=lambda: _postmaster(cluster))
        try:
            with override_settings(**overrides):
                djsetup.reset_runner()
                db.clean()
                workloads._runner().schedule_job("noop", {}, tenant_id=workloads.TENANT)  # connected, warm
                db.clean()

                def enqueue(raw: Path | None) -> dict[str, Any]:
                    meter.calibrate()
                    with _spy(os.getpid(), raw):
                        meter.start()
                        out = workloads.enqueue_single(n)
                        out["cpu_ms_per_job"] = meter.stop(n)
                    return out

                before = db.counters()
                res = {"enqueue": _profiled(cluster, cfg, "enqueue", enqueue) if profile else enqueue(None)}
                res["enqueue"]["postgres_per_job"] = db.per_job(before, db.counters(), n)
                before = db.counters()
                drain_meter = Meter(temporal=lambda: [server.proc.pid], postgres=lambda: _postmaster(cluster))

                def drain(raw: Path | None) -> dict[str, Any]:
                    return _drain(
                        lambda: temporal_bench.spawn_worker(cfg, "temporal-ab-drain"),
                        lambda: db.scalar(temporal_bench.DONE_SQL, ["noop"]),
                        n,
                        drain_meter,
                        raw,
                    )

                res["drain"] = _profiled(cluster, cfg, "drain", drain) if profile else drain(None)
                res["drain"]["postgres_per_job"] = db.per_job(before, db.counters(), n)
                res["recorded"] = db.recorded("noop", n)
                db.clean()
        finally:
            djsetup.reset_runner()
    return res


def _bare(n: int) -> dict[str, Any]:
    from temporalio.client import Client

    from bench.peers.temporal_workflows import TASK_QUEUE, NoopWorkflow

    with services.TemporalDevServer(temporal_bench.TEMPORAL_CLI, config.temporal_port()) as server:
        meter = Meter(temporal=lambda: [server.proc.pid])
        loop = asyncio.new_event_loop()
        try:
            client = loop.run_until_complete(Client.connect(config.temporal_address()))
            ids = iter(range(n))
            tag = f"ab{time.monotonic_ns()}"

            def start() -> Any:
                wf_id = f"{tag}-{next(ids)}"
                return client.start_workflow(NoopWorkflow.run, id=wf_id, task_queue=TASK_QUEUE)

            meter.calibrate()
            meter.start()
            enqueue = loop.run_until_complete(measure.atimed_enqueue(n, start, "start_workflow()"))
            enqueue["cpu_ms_per_job"] = meter.stop(n)

            def completed() -> int:
                return loop.run_until_complete(client.count_workflows(temporal_driver.COMPLETED)).count

            drain = _drain(
                lambda: harness.spawn(temporal_driver.WORKER, "temporal-ab-bare"),
                completed,
                n,
                Meter(temporal=lambda: [server.proc.pid]),
                None,
            )
        finally:
            loop.close()
    return {"enqueue": enqueue, "drain": drain}


def _line(name: str, phase: str, side: dict[str, Any]) -> str:
    p = side[phase]
    line = f"  {name:<5}{phase:<8} {p['jobs_per_s']:7.1f} jobs/s"
    for key, label in (("cpu_ms_per_job", "CPU"), ("steady_cpu_ms_per_job", "after the first job")):
        if key in p:
            cpu = p[key]
            parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "total")
            line += f"   {label} {cpu['total']:6.2f} ms/job ({parts})"
    return line


def main() -> int:
    cfg = config.load()
    cluster = pg.Cluster(cfg.pg_port)
    rounds: list[dict[str, Any]] = []
    try:
        cluster.start()
        pg.recreate_db(cfg.pg_port, cfg.db_name)
        djsetup.migrate(cfg.database_url)
        djsetup.setup(cfg.database_url)
        db = Db(cfg.database_url)
        for i in range(ROUNDS):
            ours = _ours(cfg, cluster, db, PROFILE and i == 0)
            bare = _bare(cfg.n_temporal)
            rounds.append({"ours": ours, "bare": bare, "loadavg": os.getloadavg()[0]})
            print(f"round {i + 1}: load {rounds[-1]['loadavg']:.1f}", flush=True)
            for phase in ("enqueue", "drain"):
                print(_line("ours", phase, ours), flush=True)
                print(_line("bare", phase, bare), flush=True)
            print(f"  ours recorded ok: {ours['recorded']['ok']}", flush=True)
            for phase in ("enqueue", "drain"):
                print(f"  ours postgres per job, {phase}: {ours[phase]['postgres_per_job']}", flush=True)
                for key in ("statements", "py_spy"):
                    if key in ours[phase]:
                        print(f"  {phase} {key}: {json.dumps(ours[phase][key], indent=1)}", flush=True)
    finally:
        procs.stop_all()
        cluster.stop()

    def median(phase: str, value: Callable[[dict[str, Any]], float]) -> float:
        """The median over the rounds of `value({"ours": ..., "bare": ...})` for one phase."""
        return statistics.median(value({side: r[side][phase] for side in ("ours", "bare")}) for r in rounds)

    def cpu(key: str) -> Callable[[dict[str, Any]], float]:
        return lambda p: p.get(key, p["cpu_ms_per_job"])["total"]

    summary: dict[str, Any] = {"n": cfg.n_temporal, "rounds": len(rounds)}
    print(f"medians of {len(rounds)} rounds, N = {cfg.n_temporal}:")
    for phase, label, key in (
        ("enqueue", "starts", "cpu_ms_per_job"),
        ("drain", "drain", "steady_cpu_ms_per_job"),
    ):
        per_job = cpu(key)
        s = summary[phase] = {
            "ours_jobs_per_s": median(phase, lambda r: r["ours"]["jobs_per_s"]),
            "bare_jobs_per_s": median(phase, lambda r: r["bare"]["jobs_per_s"]),
            "rate_ratio": median(phase, lambda r: r["ours"]["jobs_per_s"] / r["bare"]["jobs_per_s"]),
            "ours_cpu_ms_per_job": median(phase, lambda r, f=per_job: f(r["ours"])),
            "bare_cpu_ms_per_job": median(phase, lambda r, f=per_job: f(r["bare"])),
            "cost_ratio": median(phase, lambda r, f=per_job: f(r["ours"]) / f(r["bare"])),
        }
        print(
            f"  {label}: ours {s['ours_jobs_per_s']:.1f}/s, bare {s['bare_jobs_per_s']:.1f}/s, rate ratio "
            f"{s['rate_ratio']:.2f}x; CPU ({key}) ours {s['ours_cpu_ms_per_job']:.2f} ms/job, bare "
            f"{s['bare_cpu_ms_per_job']:.2f} ms/job, cost ratio {s['cost_ratio']:.2f}x"
        )
    config.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = config.RESULTS_DIR / f"temporal-ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
