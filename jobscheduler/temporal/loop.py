"""Event loops for sync Django code that uses the async Temporal client.

`run_in_this_thread` runs a coroutine on the calling thread's own loop (one per thread, closed when the thread
ends): a Temporal call then costs no hand-off to another thread and back. `EventLoopThread` is a private loop
on a background thread, started on first use and stopped in `close()`, for work shared by every thread (the
client's one connection attempt) and for sync code called while a loop already runs in its thread. The caller's
own loop (if any) is never touched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_this_thread = threading.local()


def run_in_this_thread(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` to its end on this thread's own event loop (cancelled if `timeout` passes first). The loop is
    made on the thread's first call and closed once the thread has ended; never call this while a loop runs in
    the thread."""
    loop = getattr(_this_thread, "loop", None)
    if loop is None:
        loop = _this_thread.loop = asyncio.new_event_loop()
        weakref.finalize(threading.current_thread(), _close, loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    except TimeoutError:
        raise TimeoutError(f"Temporal call did not finish within {timeout:g}s") from None


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Close a thread's loop once the thread has ended, first finishing the async generators the SDK left
    (their clean-up was scheduled on this loop when they were dropped)."""
    if loop.is_closed():
        return
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


class EventLoopThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._running_loop())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop thread and wait for it (cancelled on the loop if `timeout` passes first)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"Temporal call did not finish within {timeout:g}s") from None

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` from another event loop while it runs on this one."""
        return await asyncio.wrap_future(self.submit(coro))

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def _drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_drain(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
