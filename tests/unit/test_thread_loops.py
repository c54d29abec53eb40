"""run_in_this_thread: a sync caller's Temporal call runs on the caller's own thread, bounded, and its loop is
closed once the thread has ended."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from jobscheduler.temporal.loop import run_in_this_thread


async def _where() -> tuple[int, asyncio.AbstractEventLoop]:
    return threading.get_ident(), asyncio.get_running_loop()


def test_the_call_runs_on_the_calling_thread_and_each_thread_keeps_its_own_loop():
    ident, loop = run_in_this_thread(_where())
    again, same = run_in_this_thread(_where())
    assert ident == again == threading.get_ident() and loop is same

    other: list = []
    thread = threading.Thread(target=lambda: other.append(run_in_this_thread(_where())))
    thread.start()
    thread.join()
    ((other_ident, other_loop),) = other
    assert other_ident != ident and other_loop is not loop
    del thread
    gc.collect()
    assert other_loop.is_closed()  # the thread ended: its loop was closed with it
    assert not loop.is_closed()


def test_a_call_that_outlasts_its_timeout_is_cancelled_with_a_clear_error():
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(TimeoutError, match=r"^Temporal call did not finish within 0.05s$"):
        run_in_this_thread(slow(), 0.05)
    assert cancelled == [True]
