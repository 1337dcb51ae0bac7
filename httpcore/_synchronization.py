"""The two primitives the pool needs, in async and sync form.

Theory of operation: the pool's bookkeeping is plain synchronous code guarded by a state
lock. Under asyncio nothing runs between two awaits, so ``AsyncStateLock`` is free; under
threads ``SyncStateLock`` is a real lock, held only around bookkeeping and never across
I/O. A waiter is a one-shot wake-up: the pool grants it a connection, then wakes it.
"""

from __future__ import annotations

import asyncio
import threading
import typing

__all__ = ["AsyncStateLock", "AsyncWaiter", "SyncStateLock", "SyncWaiter"]


class AsyncStateLock:
    """No-op: asyncio code between two awaits already runs alone."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


SyncStateLock = threading.Lock


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class AsyncWaiter:
    """A task waiting for the pool to grant it a connection."""

    __slots__ = ("_future", "connection", "error", "origin")

    def __init__(self, origin: typing.Any) -> None:
        self.origin = origin
        self.connection: typing.Any = None
        self.error: BaseException | None = None
        self._future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def wake(self) -> None:
        if not self._future.done():
            self._future.set_result(True)

    async def wait(self, timeout: float | None) -> bool:
        """True when woken, False when the timeout passed first."""
        future = self._future
        if timeout is None:
            return await future
        handle = future.get_loop().call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            handle.cancel()


class SyncWaiter:
    """A thread waiting for the pool to grant it a connection."""

    __slots__ = ("_event", "connection", "error", "origin")

    def __init__(self, origin: typing.Any) -> None:
        self.origin = origin
        self.connection: typing.Any = None
        self.error: BaseException | None = None
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)
