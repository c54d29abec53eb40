"""The bare-Temporal peer's activities: the job handlers (async, like the other asyncio peers' handlers)."""

from __future__ import annotations

from temporalio import activity

from bench import measure


@activity.defn(name="noop_activity")
async def noop_activity() -> None:
    return None


@activity.defn(name="probe_activity")
async def probe_activity(t0: float) -> None:
    measure.record_start(t0)
