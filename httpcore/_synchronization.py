"""The concurrency primitives of the pool and the protocol code, in async and sync form.

Theory of operation: bookkeeping is plain synchronous code guarded by a state lock. Under
asyncio (and trio) nothing runs between two awaits, so ``AsyncStateLock`` is free; under threads
``SyncStateLock`` is a real lock, held only around bookkeeping and never across I/O.
A waiter is a one-shot wake-up: the pool grants it a connection, then wakes it.

HTTP/2 multiplexing needs two more: ``AsyncLock``/``SyncLock``, a lock that may be held
across I/O (one writer at a time on a shared stream) and can also be tried without
blocking, and ``AsyncEvent``/``SyncEvent``, a reusable per-stream wake-up with a timeout.
The async forms are built on bare futures: no task is ever created to wait. Their trio
forms (same interface) are in ``_synchronization_trio``; ``_library`` picks the set.
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
    "AsyncWaiterTimeouts",
    "SyncEvent",
    "SyncLock",
    "SyncStateLock",
    "SyncWaiter",
    "SyncWaiterTimeouts",
    "async_checkpoint",
    "sync_checkpoint",
]


class AsyncStateLock:
    """No-op: asyncio (or trio) code between two awaits already runs alone."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


SyncStateLock = threading.Lock


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

    def expire(self) -> None:
        if not self._future.done():
            self._future.set_result(False)

    async def wait(self, timeout: float | None, timeouts: AsyncWaiterTimeouts) -> bool:
        """True when woken, False when the timeout passed first."""
        if timeout is None:
            return await self._future
        timeouts.add(self, timeout)
        try:
            return await self._future
        finally:
            timeouts.discard(self)


class AsyncWaiterTimeouts:
    """The timeouts of many waiters on one loop timer, armed for the earliest deadline
    and re-armed when it fires: a wait costs a dict entry, not a timer handle."""

    __slots__ = ("_deadlines", "_loop", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._deadlines: dict[AsyncWaiter, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, waiter: AsyncWaiter, timeout: float) -> None:
        loop = waiter._future.get_loop()
        if loop is not self._loop:
            self._deadlines.clear()  # waiters of a loop that is gone
        deadline = loop.time() + timeout
        self._deadlines[waiter] = deadline
        if self._timer is None or deadline < self._timer_at or loop is not self._loop:
            self._arm(loop, deadline)

    def discard(self, waiter: AsyncWaiter) -> None:
        self._deadlines.pop(waiter, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = loop
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        # The loop may run a timer up to its clock resolution early.
        now = loop.time() + 0.001
        pending = None
        for waiter, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[waiter]
                waiter.expire()
            elif pending is None or deadline < pending:
                pending = deadline
        if pending is not None:
            self._arm(loop, pending)


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

    def wait(self, timeout: float | None, timeouts: SyncWaiterTimeouts) -> bool:
        return self._event.wait(timeout)


class SyncWaiterTimeouts:
    """A blocked thread keeps its own timeout: nothing to track."""

    __slots__ = ()


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
            elif future in self._waiters:
                # Not yet passed over: a release() meanwhile skips and drops a done future.
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
