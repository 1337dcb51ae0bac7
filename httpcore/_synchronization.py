"""The concurrency primitives of the pool and the protocol code, in async and sync form.

Theory of operation: bookkeeping is plain synchronous code guarded by a state lock. Under
asyncio nothing runs between two awaits, so ``AsyncStateLock`` is free; under threads
``SyncStateLock`` is a real lock, held only around bookkeeping and never across I/O.
A waiter is a one-shot wake-up: the pool grants it a connection, then wakes it.

HTTP/2 multiplexing needs two more: ``AsyncLock``/``SyncLock``, a lock that may be held
across I/O (one writer at a time on a shared stream) and can also be tried without
blocking, and ``AsyncEvent``/``SyncEvent``, a reusable per-stream wake-up with a timeout.
The async forms are built on bare futures: no task is ever created to wait.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import typing

__all__ = [
    "AsyncEvent",
    "AsyncLock",
    "AsyncStateLock",
    "AsyncWaiter",
    "SyncEvent",
    "SyncLock",
    "SyncStateLock",
    "SyncWaiter",
    "async_checkpoint",
    "sync_checkpoint",
]


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

    __slots__ = ("_future", "connection", "error", "fresh", "origin")

    def __init__(self, origin: typing.Any, fresh: bool = False) -> None:
        self.origin = origin
        # A retry after a stale connection: it must get a new connection, never a used one.
        self.fresh = fresh
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

    __slots__ = ("_event", "connection", "error", "fresh", "origin")

    def __init__(self, origin: typing.Any, fresh: bool = False) -> None:
        self.origin = origin
        # A retry after a stale connection: it must get a new connection, never a used one.
        self.fresh = fresh
        self.connection: typing.Any = None
        self.error: BaseException | None = None
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)


class AsyncLock:
    """A FIFO lock that may be held across awaits; ownership passes straight to the next
    waiter on release, so ``try_acquire`` never jumps the queue."""

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        return self._locked

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting."""
        if self._locked:
            return False
        self._locked = True
        return True

    async def acquire(self) -> None:
        if not self._locked:
            self._locked = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # granted, then cancelled before it could run: pass it on
            else:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self._locked = False


class SyncLock:
    """A lock that may be held across blocking I/O, and tried without blocking."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def locked(self) -> bool:
        return self._lock.locked()

    def try_acquire(self) -> bool:
        return self._lock.acquire(blocking=False)

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncEvent:
    """A reusable wake-up flag for one task: ``set``, ``clear``, ``wait(timeout)``."""

    __slots__ = ("_flag", "_future")

    def __init__(self) -> None:
        self._flag = False
        self._future: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        if self._future is not None:
            _wake(self._future)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout: float | None = None) -> bool:
        """True once set, False when the timeout passed first."""
        if self._flag:
            return True
        future = self._future = asyncio.get_running_loop().create_future()
        handle = None if timeout is None else future.get_loop().call_later(timeout, _wake, future)
        try:
            await future
        finally:
            self._future = None
            if handle is not None:
                handle.cancel()
        return self._flag


SyncEvent = threading.Event


async def async_checkpoint() -> None:
    """Give every other task that is ready to run its turn first."""
    await asyncio.sleep(0)


def sync_checkpoint() -> None:
    """Threads take their turns without being asked: nothing to do."""
