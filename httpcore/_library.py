"""Which async library is running, and what httpcore uses of it: one table per library.

Theory of operation: the async half is written once and runs under asyncio or trio. What
differs is looked up in a table (``AsyncLibrary``: the network backend, the lock, the
event, the pool's waiter, the checkpoint) chosen by ``current_async_library()`` when
something library-specific is made: a connection picks its backend when created, an
HTTP/2 connection its lock, the pool a waiter when a request has to wait. Nothing is
looked up per read or write. The check is asyncio's own ``get_running_loop()`` (a C call);
only when no asyncio loop runs is trio asked, and trio is imported only once it is
running. The sync half gets the thread table from ``current_sync_library()``.
"""

from __future__ import annotations

import asyncio
import sys
import typing
from collections.abc import Awaitable, Callable

from ._backends.asyncio_backend import AsyncioBackend
from ._backends.base import AsyncNetworkBackend, NetworkBackend
from ._backends.sync_backend import SyncBackend
from ._synchronization import (
    AsyncEvent,
    AsyncLock,
    AsyncWaiter,
    SyncEvent,
    SyncLock,
    SyncWaiter,
    async_checkpoint,
    sync_checkpoint,
)

__all__ = ["AsyncLibrary", "SyncLibrary", "current_async_library", "current_sync_library"]


class AsyncLibrary(typing.NamedTuple):
    """What the async half needs from one async library."""

    name: str
    backend: AsyncNetworkBackend
    lock: Callable[[], AsyncLock]
    event: Callable[[], AsyncEvent]
    waiter: Callable[[typing.Any, bool], AsyncWaiter]
    checkpoint: Callable[[], Awaitable[None]]


class SyncLibrary(typing.NamedTuple):
    """The same for the sync half: threads."""

    name: str
    backend: NetworkBackend
    lock: Callable[[], SyncLock]
    event: Callable[[], SyncEvent]
    waiter: Callable[[typing.Any, bool], SyncWaiter]
    checkpoint: Callable[[], None]


ASYNCIO = AsyncLibrary("asyncio", AsyncioBackend(), AsyncLock, AsyncEvent, AsyncWaiter, async_checkpoint)
THREADS = SyncLibrary("threads", SyncBackend(), SyncLock, SyncEvent, SyncWaiter, sync_checkpoint)
_trio: AsyncLibrary | None = None


def current_async_library() -> AsyncLibrary:
    """The table of the library running the calling task: asyncio or trio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _trio_library()
    return ASYNCIO


def _trio_library() -> AsyncLibrary:
    global _trio
    trio = sys.modules.get("trio")  # never imported here: if it is running, it is loaded
    try:
        if trio is None:
            raise RuntimeError()
        trio.lowlevel.current_task()  # raises outside a trio task (in_trio_task() needs trio 0.29)
    except RuntimeError:
        raise RuntimeError("httpcore's async API needs a running asyncio event loop or trio.run()") from None
    if _trio is None:
        from ._backends.trio_backend import TrioBackend
        from ._synchronization_trio import TrioEvent, TrioLock, TrioWaiter, trio_checkpoint

        _trio = AsyncLibrary("trio", TrioBackend(), TrioLock, TrioEvent, TrioWaiter, trio_checkpoint)
    return _trio


def current_sync_library() -> SyncLibrary:
    """The thread table: the sync half runs wherever it is called."""
    return THREADS
