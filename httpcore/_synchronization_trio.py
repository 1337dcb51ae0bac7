"""The trio forms of the async primitives in ``_synchronization``: same interface, same
semantics, built on trio's parking (``wait_task_rescheduled`` / ``reschedule``).

Theory of operation: where the asyncio forms park a task on a bare future, these park it
with ``trio.lowlevel.wait_task_rescheduled`` and wake it with ``reschedule``. A timeout
is a cancel scope with that deadline around the park (trio keeps deadlines in its own
heap, so the shared loop timer of ``AsyncWaiterTimeouts`` has no trio counterpart).
Cancellation is trio's: a parked task that is cancelled is unparked by the abort callback,
synchronously, so it can never be woken and cancelled at once (the race the asyncio lock
must handle). Each class subclasses its asyncio form only to share its type.
Imported only when trio is running.
"""

from __future__ import annotations

import collections
import typing

import trio

from ._synchronization import AsyncEvent, AsyncLock, AsyncWaiter, AsyncWaiterTimeouts

__all__ = ["TrioEvent", "TrioLock", "TrioWaiter", "trio_checkpoint"]

_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED
_current_task = trio.lowlevel.current_task
_park = trio.lowlevel.wait_task_rescheduled
_reschedule = trio.lowlevel.reschedule


class TrioWaiter(AsyncWaiter):
    """A task waiting for the pool to grant it a connection."""

    __slots__ = ("_task", "_woken")

    def __init__(self, origin: typing.Any, fresh: bool = False) -> None:
        self.origin = origin
        self.fresh = fresh
        self.connection: typing.Any = None
        self.error: BaseException | None = None
        self._woken = False
        self._task: trio.lowlevel.Task | None = None

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            task = self._task
            if task is not None:
                self._task = None
                _reschedule(task)

    def expire(self) -> None:  # pragma: no cover - trio waiters time out by cancel scope
        pass

    async def wait(self, timeout: float | None, timeouts: AsyncWaiterTimeouts) -> bool:
        """True when woken, False when the timeout passed first."""
        if self._woken:
            await trio.lowlevel.checkpoint()
            return True
        self._task = _current_task()
        if timeout is None:
            await _park(self._abort)
        else:
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                await _park(self._abort)
        return self._woken

    def _abort(self, raise_cancel: typing.Any) -> trio.lowlevel.Abort:
        self._task = None
        return _SUCCEEDED


class TrioLock(AsyncLock):
    """A FIFO lock that may be held across awaits; ownership passes straight to the next
    waiter on release, so ``try_acquire`` never jumps the queue."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._locked = False
        self._tasks: collections.deque[trio.lowlevel.Task] = collections.deque()

    def locked(self) -> bool:
        return self._locked

    def try_acquire(self) -> bool:
        if self._locked:
            return False
        self._locked = True
        return True

    async def acquire(self) -> None:
        if not self._locked:
            self._locked = True
            return
        task = _current_task()
        self._tasks.append(task)

        def abort(raise_cancel: typing.Any) -> trio.lowlevel.Abort:
            self._tasks.remove(task)  # still queued: a woken task is never aborted
            return _SUCCEEDED

        await _park(abort)

    def release(self) -> None:
        if self._tasks:
            _reschedule(self._tasks.popleft())  # the lock stays taken, now by that task
        else:
            self._locked = False


class TrioEvent(AsyncEvent):
    """A reusable wake-up flag for one task: ``set``, ``clear``, ``wait(timeout)``."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._flag = False
        self._task: trio.lowlevel.Task | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        task = self._task
        if task is not None:
            self._task = None
            _reschedule(task)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout: float | None = None) -> bool:
        """True once set, False when the timeout passed first."""
        if self._flag:
            return True
        self._task = _current_task()
        if timeout is None:
            await _park(self._abort)
        else:
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                await _park(self._abort)
        return self._flag

    def _abort(self, raise_cancel: typing.Any) -> trio.lowlevel.Abort:
        self._task = None
        return _SUCCEEDED


async def trio_checkpoint() -> None:
    """Give every other task that is ready to run its turn first. Not a cancellation
    point: HTTP/2's writer yields here holding frames other tasks queued for it to send,
    and a cancelled writer must still send them (trio would cancel it here every time)."""
    await trio.lowlevel.cancel_shielded_checkpoint()
