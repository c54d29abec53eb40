"""Benchmark sizes and paths, from environment variables, so `make bench` and a smoke run share one code path.

`BENCH_SMOKE=1` shrinks every size (a minute or two); explicit `BENCH_*` variables always win. The defaults
that the peer harness also reads (`BENCH_N`, `BENCH_LAT_JOBS`, ...) are put in `os.environ` before the peer
`common.py` is imported, so both sides measure with the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS_DIR = Path(os.environ.get("BENCH_OUT", str(BENCH_DIR / "results")))
LOG_DIR = RESULTS_DIR / "logs"
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", "/work/shared/peers"))
VENV_PY = REPO / ".venv" / "bin" / "python"

ALL_PEERS = "pgqueuer procrastinate django-q2 django-q2-save0 django-tasks celery temporal"
ALL_WORKLOADS = "enqueue,drain,latency,profile,scale,memory,temporal,peers"

#: Smoke-mode defaults; a variable already set in the environment is left alone.
SMOKE_DEFAULTS = {
    "BENCH_N": "2000",
    "BENCH_N_TEMPORAL": "200",
    "BENCH_SCALE_FINISHED": "50000",
    "BENCH_SCALE_QUEUED": "5000",
    "BENCH_MEM_N": "10000",
    "BENCH_PEERS": "pgqueuer",
}

FULL_DEFAULTS = {
    "BENCH_N": "20000",
    "BENCH_N_TEMPORAL": "2000",
    "BENCH_SCALE_FINISHED": "1000000",
    "BENCH_SCALE_QUEUED": "100000",
    "BENCH_MEM_N": "200000",
    "BENCH_PEERS": ALL_PEERS,
}


def apply_defaults() -> None:
    """Fill unset BENCH_* variables (smoke or full) before anything reads them, peers' common.py included."""
    defaults = SMOKE_DEFAULTS if os.environ.get("BENCH_SMOKE", "") not in ("", "0") else FULL_DEFAULTS
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Config:
    n: int
    n_temporal: int
    concurrency: int
    scale_finished: int
    scale_queued: int
    mem_n: int
    peers: list[str]
    workloads: set[str]
    bulk_chunk: int
    pg_port: int
    db_name: str
    smoke: bool

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{self.db_name}"


def load() -> Config:
    apply_defaults()
    env = os.environ
    peers = env.get("BENCH_PEERS", "").split()
    if peers == ["none"]:
        peers = []
    workloads = {w.strip() for w in env.get("BENCH_WORKLOADS", ALL_WORKLOADS).split(",") if w.strip()}
    if not peers:
        workloads.discard("peers")
    return Config(
        n=int(env["BENCH_N"]),
        n_temporal=int(env["BENCH_N_TEMPORAL"]),
        concurrency=int(env.get("BENCH_CONCURRENCY", "100")),
        scale_finished=int(env["BENCH_SCALE_FINISHED"]),
        scale_queued=int(env["BENCH_SCALE_QUEUED"]),
        mem_n=int(env["BENCH_MEM_N"]),
        peers=peers,
        workloads=workloads,
        bulk_chunk=int(env.get("BENCH_BULK_CHUNK", "1000")),
        pg_port=int(env.setdefault("BENCH_PG_PORT", "55432")),
        db_name=env.get("BENCH_DB", "bench_jobscheduler"),
        smoke=env.get("BENCH_SMOKE", "") not in ("", "0"),
    )
