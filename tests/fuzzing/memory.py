"""An in-memory network for the fuzz: each connection is a scripted server peer.

Theory of operation: the pool is given ``MemoryBackend`` (or ``AsyncMemoryBackend``) as
its network backend; every connection it opens is a ``MemoryStream`` wired to a new
peer made by the backend's factory. What the client writes goes to the peer at once,
and the peer queues what the client will read: chunks of bytes, then the end (``b""``),
a reset (``ReadError``) or a stall (``ReadTimeout``, as the read timeout would end it).
Nothing waits, so a case costs what the protocol code costs, and no read can hang: a
read with nothing queued is a stall. The real socket path is fuzzed separately
(tests/test_fuzz_http11.py); this one is for volume.

Peers: ``H1Peer`` answers ``/good/<token>`` with ``good:<token>`` and ``/fuzz/<i>``
with HTTP/1.1 case i (tests/fuzzing/h1.py); ``H2Peer`` is a server-side ``h2``
connection that answers the same way on HTTP/2, each fuzz case a sequence of frames
(tests/fuzzing/h2.py). Every stream is kept, so the fuzz can check that each one the
pool let go of was closed.
"""

from __future__ import annotations

import collections
import typing
from collections.abc import Callable

import httpcore
from httpcore._backends.base import AsyncNetworkBackend, AsyncNetworkStream, NetworkBackend, NetworkStream

__all__ = ["AsyncMemoryBackend", "MemoryBackend", "Peer", "RESET", "STALL"]

RESET = object()  # queued: the next read fails as a TCP reset would
STALL = object()  # queued: the next read times out


class Peer:
    """The server side of one connection; subclasses decide what to answer."""

    def __init__(self) -> None:
        self.outgoing: collections.deque[typing.Any] = collections.deque()
        self.ended = False  # b"" is all the client will read from now on
        self.dead = False  # reset: reads and writes fail

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def next_read(self) -> bytes:
        if self.outgoing:
            item = self.outgoing.popleft()
            if item is RESET:
                self.dead = True
                self.outgoing.clear()
            elif item is not STALL:
                return typing.cast(bytes, item)
            else:
                raise httpcore.ReadTimeout("memory: the peer stalled")
        if self.dead:
            raise httpcore.ReadError("memory: connection reset by peer")
        if self.ended:
            return b""
        raise httpcore.ReadTimeout("memory: nothing more from the peer")

    def readable(self) -> bool:
        return bool(self.outgoing) or self.ended or self.dead

    def write(self, data: bytes) -> None:
        if self.dead:
            raise httpcore.WriteError("memory: connection reset by peer")
        if not self.ended:
            self.received(data)


class _Streams:
    def __init__(self, factory: Callable[[], Peer]) -> None:
        self.factory = factory
        self.streams: list[typing.Any] = []

    def open_streams(self) -> int:
        return sum(1 for stream in self.streams if not stream.closed)


class MemoryStream(NetworkStream):
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.closed = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.closed:
            raise httpcore.ReadError("memory: the connection is closed")
        return self.peer.next_read()

    def write(self, data: bytes, timeout: float | None = None) -> None:
        if self.closed:
            raise httpcore.WriteError("memory: the connection is closed")
        self.peer.write(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, info: str) -> typing.Any:
        return None

    def is_readable(self) -> bool:
        return self.closed or self.peer.readable()


class MemoryBackend(NetworkBackend, _Streams):
    def connect_tcp(self, host: str, port: int, *args: typing.Any, **kwargs: typing.Any) -> NetworkStream:
        stream = MemoryStream(self.factory())
        self.streams.append(stream)
        return stream

    def sleep(self, seconds: float) -> None:
        pass


class AsyncMemoryStream(AsyncNetworkStream):
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.closed:
            raise httpcore.ReadError("memory: the connection is closed")
        return self.peer.next_read()

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        if self.closed:
            raise httpcore.WriteError("memory: the connection is closed")
        self.peer.write(data)

    async def aclose(self) -> None:
        self.closed = True

    def get_extra_info(self, info: str) -> typing.Any:
        return None

    def is_readable(self) -> bool:
        return self.closed or self.peer.readable()


class AsyncMemoryBackend(AsyncNetworkBackend, _Streams):
    async def connect_tcp(
        self, host: str, port: int, *args: typing.Any, **kwargs: typing.Any
    ) -> AsyncNetworkStream:
        stream = AsyncMemoryStream(self.factory())
        self.streams.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        pass
