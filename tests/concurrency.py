"""Library-neutral helpers for the async tests, which run under asyncio and trio alike.

Each has a sync form of the same name with ``sync_`` for ``async_``; scripts/unasync.py
maps one to the other when it generates tests/_sync from tests/_async.
"""

from __future__ import annotations

import time

from httpcore._library import current_async_library

__all__ = ["async_sleep", "sync_sleep"]


async def async_sleep(seconds: float) -> None:
    """Sleep with the running library (asyncio or trio)."""
    await current_async_library().backend.sleep(seconds)


def sync_sleep(seconds: float) -> None:
    time.sleep(seconds)
