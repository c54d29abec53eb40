"""Benchmark sizes, ports and paths, from environment variables, so `make bench` and a smoke run share one code path.

`BENCH_SMOKE=1` shrinks every size (a few minutes in all); explicit `BENCH_*` variables always win. The sizes
are put in `os.environ` before bench.measure is imported, here and in every peer driver (which inherits the
environment), so both sides measure with the same values.

Standard library only: the peer drivers import it from the bench virtualenv too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS_DIR = Path(os.environ.get("BENCH_OUT", str(BENCH_DIR / "results")))
LOG_DIR = RESULTS_DIR / "logs"
#: The peers' own virtualenv, created and filled by bench/peers/venv.py (git-ignored).
PEER_VENV = Path(os.environ.get("BENCH_VENV", str(REPO / ".bench-venv")))

ALL_PEERS = "pgqueuer procrastinate chancy django-q2 django-q2-save0 django-tasks celery temporal"
ALL_WORKLOADS = "enqueue,drain,latency,workflow,profile,scale,memory,temporal,dashboard,peers"

#: Smoke-mode defaults; a variable already set in the environment is left alone.
SMOKE_DEFAULTS = {
    "BENCH_N": "2000",
    "BENCH_N_TEMPORAL": "200",
    "BENCH_SCALE_FINISHED": "50000",
    "BENCH_SCALE_QUEUED": "5000",
    "BENCH_MEM_N": "10000",
    "BENCH_DASHBOARD_ROWS": "50000",
    "BENCH_DASHBOARD_REPEAT": "5",
    "BENCH_WF_WIDTH": "200",
    "BENCH_WF_CHAIN": "50",
    "BENCH_WF_WIDTH_TEMPORAL": "50",
    "BENCH_WF_CHAIN_TEMPORAL": "20",
    "BENCH_PEERS": ALL_PEERS,
    # A second drain trial only for peers whose first took at most this long (django-q2 at its defaults
    # does not, so smoke skips its second trial).
    "BENCH_TRIAL2_MAX_S": "20",
}

FULL_DEFAULTS = {
    "BENCH_N": "20000",
    "BENCH_N_TEMPORAL": "2000",
    "BENCH_SCALE_FINISHED": "1000000",
    "BENCH_SCALE_QUEUED": "100000",
    "BENCH_MEM_N": "1000000",
    "BENCH_DASHBOARD_ROWS": "1000000",
    "BENCH_DASHBOARD_REPEAT": "15",
    "BENCH_WF_WIDTH": "1000",
    "BENCH_WF_CHAIN": "200",
    "BENCH_WF_WIDTH_TEMPORAL": "200",
    "BENCH_WF_CHAIN_TEMPORAL": "50",
    "BENCH_PEERS": ALL_PEERS,
}

#: Loopback ports of the servers the bench starts (each refuses to start on a port already taken).
PORT_DEFAULTS = {
    "BENCH_PG_PORT": "55432",
    "BENCH_REDIS_PORT": "56379",
    "BENCH_TEMPORAL_PORT": "17233",
}


def smoke() -> bool:
    return os.environ.get("BENCH_SMOKE", "") not in ("", "0")


def apply_defaults() -> None:
    """Fill unset BENCH_* variables (smoke or full, and the ports) before anything reads them."""
    for key, value in (SMOKE_DEFAULTS if smoke() else FULL_DEFAULTS).items():
        os.environ.setdefault(key, value)
    for key, value in PORT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def pg_dsn(db: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{os.environ['BENCH_PG_PORT']}/{db}"


def redis_port() -> int:
    return int(os.environ["BENCH_REDIS_PORT"])


def temporal_port() -> int:
    return int(os.environ["BENCH_TEMPORAL_PORT"])


def temporal_address() -> str:
    return f"127.0.0.1:{temporal_port()}"


@dataclass(frozen=True)
class Config:
    n: int
    n_temporal: int
    concurrency: int
    scale_finished: int
    scale_queued: int
    mem_n: int
    dashboard_rows: int
    dashboard_repeat: int
    peers: list[str]
    workloads: set[str]
    bulk_chunk: int
    pg_port: int
    db_name: str
    smoke: bool

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{self.db_name}"


class ConfigError(Exception):
    """A BENCH_* variable names something the bench does not know; raised before anything starts."""


def workloads_from_env() -> set[str]:
    """BENCH_WORKLOADS as a set (all when unset); the peer drivers read it too, to skip what was not asked."""
    return {w.strip() for w in os.environ.get("BENCH_WORKLOADS", ALL_WORKLOADS).split(",") if w.strip()}


#: The workloads a peer driver has a side of: the standard sequence (bench/peers/harness.py) and workflows.
PEER_STANDARD = frozenset({"enqueue", "drain", "latency"})
PEER_WORKFLOW = "workflow"


def peer_phases(workloads: set[str]) -> set[str]:
    """What a peer driver runs for BENCH_WORKLOADS: "standard" (its enqueue, drain and latency sequence) when
    one of those is named or when none of its workloads is (`peers` alone means all of them, as before the
    workflow workload existed), and "workflow" when it is named."""
    named = workloads & (PEER_STANDARD | {PEER_WORKFLOW})
    out = {"standard"} if workloads & PEER_STANDARD or not named else set()
    if PEER_WORKFLOW in workloads:
        out.add(PEER_WORKFLOW)
    return out


def load() -> Config:
    apply_defaults()
    env = os.environ
    peers = env.get("BENCH_PEERS", "").split()
    if peers == ["none"]:
        peers = []
    unknown = sorted(set(peers) - set(ALL_PEERS.split()))
    if unknown:
        raise ConfigError(f"BENCH_PEERS: unknown peer(s) {', '.join(unknown)}; known: {ALL_PEERS}")
    workloads = workloads_from_env()
    unknown = sorted(workloads - set(ALL_WORKLOADS.split(",")))
    if unknown:
        raise ConfigError(
            f"BENCH_WORKLOADS: unknown workload(s) {', '.join(unknown)}; known: {ALL_WORKLOADS}"
        )
    if not peers:
        workloads.discard("peers")
    return Config(
        n=int(env["BENCH_N"]),
        n_temporal=int(env["BENCH_N_TEMPORAL"]),
        concurrency=int(env.get("BENCH_CONCURRENCY", "100")),
        scale_finished=int(env["BENCH_SCALE_FINISHED"]),
        scale_queued=int(env["BENCH_SCALE_QUEUED"]),
        mem_n=int(env["BENCH_MEM_N"]),
        dashboard_rows=int(env["BENCH_DASHBOARD_ROWS"]),
        dashboard_repeat=int(env["BENCH_DASHBOARD_REPEAT"]),
        peers=peers,
        workloads=workloads,
        bulk_chunk=int(env.get("BENCH_BULK_CHUNK", "1000")),
        pg_port=int(env["BENCH_PG_PORT"]),
        db_name=env.get("BENCH_DB", "bench_jobscheduler"),
        smoke=smoke(),
    )
