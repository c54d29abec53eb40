"""procrastinate's side of the bench: the App and its two tasks, loaded by the driver and by the worker CLI."""

from __future__ import annotations

from procrastinate import App, PsycopgConnector

from bench import config, measure

DB = "bench_procrastinate"
app = App(connector=PsycopgConnector(conninfo=config.pg_dsn(DB)))


@app.task(name="noop")
async def noop() -> None:
    return None


@app.task(name="probe")
async def probe(t0: float) -> None:
    measure.record_start(t0)
