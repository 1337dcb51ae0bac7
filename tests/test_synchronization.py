"""The concurrency primitives of ``httpcore._synchronization``, in isolation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from httpcore._synchronization import (
    AsyncEvent,
    AsyncLock,
    AsyncWaiter,
    AsyncWaiterTimeouts,
    SyncEvent,
    SyncLock,
    SyncWaiter,
    SyncWaiterTimeouts,
)


async def test_async_lock_is_fifo_and_hands_over() -> None:
    lock = AsyncLock()
    order: list[int] = []
    assert lock.try_acquire()
    assert lock.locked() and not lock.try_acquire()

    async def worker(index: int) -> None:
        await lock.acquire()
        order.append(index)
        await asyncio.sleep(0)
        lock.release()

    tasks = [asyncio.create_task(worker(index)) for index in range(3)]
    await asyncio.sleep(0)
    lock.release()  # handed straight to worker 0: still locked for anyone trying
    assert lock.locked() and not lock.try_acquire()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert not lock.locked()


async def test_async_lock_cancelled_waiters() -> None:
    lock = AsyncLock()
    await lock.acquire()
    waiting = asyncio.create_task(lock.acquire())
    granted = asyncio.create_task(lock.acquire())
    last = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # cancelled while queued: skipped, then it leaves the queue
    lock.release()  # granted to the second...
    granted.cancel()  # ...which is cancelled before it runs: it passes the lock on
    await asyncio.gather(waiting, granted, return_exceptions=True)
    await asyncio.wait_for(last, 1)
    assert lock.locked()
    lock.release()
    assert not lock.locked()


async def test_async_lock_waiter_cancelled_as_holder_releases() -> None:
    """A queued waiter cancelled just before the holder lets go ends with CancelledError
    (it once raised ValueError), and the lock is free afterwards."""
    lock = AsyncLock()
    await lock.acquire()
    waiter = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not lock.locked()
    assert lock.try_acquire()


async def test_async_event() -> None:
    event = AsyncEvent()
    assert not await event.wait(0.01)
    event.set()
    assert event.is_set()
    assert await event.wait(None)
    event.clear()
    waiter = asyncio.create_task(event.wait(None))
    await asyncio.sleep(0)
    event.set()
    event.set()  # twice before the waiter runs: harmless
    assert await waiter
    event.clear()
    started = time.monotonic()
    assert not await event.wait(0.05)
    assert time.monotonic() - started >= 0.04


def test_sync_lock_and_event() -> None:
    lock = SyncLock()
    assert lock.try_acquire()
    assert lock.locked() and not lock.try_acquire()
    event = SyncEvent()
    results: list[bool] = []

    def other() -> None:
        lock.acquire()
        results.append(event.wait(1))
        lock.release()

    thread = threading.Thread(target=other)
    thread.start()
    lock.release()
    event.set()
    thread.join(2)
    assert results == [True]
    assert not lock.locked()


async def test_waiter_timeouts_share_one_timer_and_expire_in_deadline_order() -> None:
    timeouts = AsyncWaiterTimeouts()
    expired: list[str] = []
    results: dict[str, bool] = {}

    async def wait(name: str, waiter: AsyncWaiter, timeout: float | None) -> None:
        results[name] = await waiter.wait(timeout, timeouts)
        expired.append(name)

    slow, served, fast, forever = (AsyncWaiter(name) for name in ("slow", "served", "fast", "forever"))
    tasks = [
        asyncio.create_task(wait("slow", slow, 0.15)),
        asyncio.create_task(wait("served", served, 0.01)),
        # Added last with the earliest remaining deadline: the shared timer is re-armed.
        asyncio.create_task(wait("fast", fast, 0.05)),
        asyncio.create_task(wait("forever", forever, None)),
    ]
    await asyncio.sleep(0)
    served.wake()  # woken before its deadline: it must not count as a timeout
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*tasks[:3]), 2.0)
    elapsed = time.monotonic() - started
    assert expired == ["served", "fast", "slow"]
    assert results == {"served": True, "fast": False, "slow": False}
    assert 0.12 <= elapsed < 1.0
    assert not timeouts._deadlines  # nothing left behind
    assert not tasks[3].done()
    forever.wake()
    await tasks[3]
    assert results["forever"] is True


async def test_waiter_timeouts_forget_a_cancelled_waiter() -> None:
    timeouts = AsyncWaiterTimeouts()
    waiter = AsyncWaiter("origin")
    task = asyncio.create_task(waiter.wait(10.0, timeouts))
    await asyncio.sleep(0)
    assert waiter in timeouts._deadlines
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not timeouts._deadlines


def test_waiter_timeouts_follow_the_running_loop() -> None:
    """A pool used from one loop and then another still times its waiters out."""
    timeouts = AsyncWaiterTimeouts()

    async def wait_once() -> bool:
        return await AsyncWaiter("origin").wait(0.02, timeouts)

    assert asyncio.run(wait_once()) is False
    assert asyncio.run(wait_once()) is False


def test_sync_waiter_times_out_on_its_own() -> None:
    waiter = SyncWaiter("origin")
    assert waiter.wait(0.01, SyncWaiterTimeouts()) is False
    waiter.wake()
    assert waiter.wait(0.01, SyncWaiterTimeouts()) is True
