"""Connecting to Temporal with a bounded wait, the same way for the runner and the worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client

from ..conf import env_setting, setting
from ..exceptions import RunnerUnavailable


async def connect_client(
    address: str | None = None, namespace: str | None = None, timeout: float | None = None
) -> Client:
    """A connected client, or RunnerUnavailable naming the address once `timeout` seconds have passed."""
    address = address or env_setting("TEMPORAL_ADDRESS")
    namespace = namespace or env_setting("TEMPORAL_NAMESPACE")
    timeout = float(timeout if timeout is not None else setting("TEMPORAL_CONNECT_TIMEOUT_SECONDS"))
    try:
        return await asyncio.wait_for(
            Client.connect(address, namespace=namespace, connect_timeout=timedelta(seconds=timeout)),
            timeout,
        )
    except (TimeoutError, RuntimeError, OSError, ValueError) as exc:
        raise RunnerUnavailable(
            f"Temporal is unreachable at {address} (namespace {namespace!r}) within {timeout:g}s: "
            f"{exc or type(exc).__name__}"
        ) from exc
