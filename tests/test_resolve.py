"""Name resolution in both backends (``resolve``): what SOCKS5 without the "h" needs."""

from __future__ import annotations

import socket
import threading
import typing
from collections.abc import Iterator

import pytest

from httpcore import AsyncioBackend, ConnectError, ConnectTimeout, SyncBackend


@pytest.fixture
def stalled_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """getaddrinfo() blocks (up to 10 s) until the event is set, or the test ends."""
    release = threading.Event()

    def stalled(*args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        release.wait(10)
        raise OSError("released")

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    yield release
    release.set()


def test_sync_resolve() -> None:
    backend = SyncBackend()
    assert "127.0.0.1" in backend.resolve("localhost", 80)
    assert backend.resolve("127.0.0.1", 80, timeout=5.0) == ["127.0.0.1"]
    assert backend.resolve("::1", 80, timeout=5.0) == ["::1"]


async def test_asyncio_resolve() -> None:
    backend = AsyncioBackend()
    assert "127.0.0.1" in await backend.resolve("localhost", 80)
    assert await backend.resolve("127.0.0.1", 80, timeout=5.0) == ["127.0.0.1"]


def test_sync_resolve_failure() -> None:
    with pytest.raises(ConnectError, match="Could not resolve"):
        SyncBackend().resolve("bad\x00host", 80, timeout=5.0)
    with pytest.raises(ConnectError, match="Could not resolve"):
        SyncBackend().resolve("bad\x00host", 80)


async def test_asyncio_resolve_failure() -> None:
    with pytest.raises(ConnectError, match="Could not resolve"):
        await AsyncioBackend().resolve("bad\x00host", 80, timeout=5.0)


@pytest.mark.usefixtures("stalled_resolver")
def test_sync_resolve_timeout() -> None:
    with pytest.raises(ConnectTimeout, match=r"Timed out resolving example\.test"):
        SyncBackend().resolve("example.test", 80, timeout=0.2)


async def test_asyncio_resolve_timeout(stalled_resolver: threading.Event) -> None:
    with pytest.raises(ConnectTimeout, match=r"Timed out resolving example\.test"):
        await AsyncioBackend().resolve("example.test", 80, timeout=0.2)
    stalled_resolver.set()  # before the loop closes: it waits for its executor's threads
