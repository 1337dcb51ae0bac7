"""Library-neutral helpers for the async tests, which run under asyncio and trio alike.

Each has a sync form of the same name with ``sync_`` for ``async_``; scripts/unasync.py
maps one to the other when it generates tests/_sync from tests/_async.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from httpcore import AsyncNetworkBackend, AsyncNetworkStream, SyncBackend
from httpcore._backends.base import SocketOption
from httpcore._library import current_async_library

__all__ = ["AsyncRunningBackend", "SyncBackend", "async_sleep", "sync_sleep"]


async def async_sleep(seconds: float) -> None:
    """Sleep with the running library (asyncio or trio)."""
    await current_async_library().backend.sleep(seconds)


def sync_sleep(seconds: float) -> None:
    time.sleep(seconds)


class AsyncRunningBackend(AsyncNetworkBackend):
    """The running library's backend, for tests to subclass; its sync form is
    ``SyncBackend``."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        backend = current_async_library().backend
        return await backend.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        return await current_async_library().backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await current_async_library().backend.sleep(seconds)

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        return await current_async_library().backend.resolve(host, port, timeout)
