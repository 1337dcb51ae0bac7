"""The concurrency primitives of ``httpcore._synchronization``, in isolation."""

from __future__ import annotations

import asyncio
import threading
import time

from httpcore._synchronization import AsyncEvent, AsyncLock, SyncEvent, SyncLock


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
