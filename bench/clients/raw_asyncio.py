"""Floor: a hand-written asyncio.Protocol HTTP/1.1 client.

Hard-coded request bytes, minimal parsing in data_received (status and nginx's exact
`Content-Length: ` header; body bytes are counted, not kept), one future per request,
big bodies written in 256 KiB slices with write flow control, a trivial asyncio.Queue-
based pool that opens connections lazily up to the limit. The cheapest a client on the
asyncio event loop can be; bench/run.py also runs it on uvloop for reference. Stdlib
only.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import _common

CHUNK = 256 * 1024


class Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, int]] | None = None
        self.buf = bytearray()
        self.left = -1  # body bytes still expected; -1 while reading the head
        self.status = 0
        self.length = 0
        self.drained: asyncio.Future[None] | None = None  # set while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Pause as soon as anything is buffered: big bodies then go straight from our
        # buffer to the socket instead of being copied into the transport's buffer.
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def data_received(self, data: bytes) -> None:
        if self.left < 0:
            buf = self.buf
            buf += data
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.status = int(buf[9:12])
            j = buf.find(b"Content-Length: ", 0, i) + 16
            self.length = int(buf[j : buf.find(b"\r\n", j)])
            self.left = self.length - (len(buf) - i - 4)
            buf.clear()
        else:
            self.left -= len(data)
        if self.left <= 0:
            self.left = -1
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():
                w.set_result((self.status, self.length))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("server closed the connection"))

    async def roundtrip(self, head: bytes, body: bytes | None = None) -> tuple[int, int]:
        t = self.transport
        assert t is not None
        waiter: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        t.write(head)
        if body is not None:
            view = memoryview(body)
            for off in range(0, len(view), CHUNK):
                if self.drained is not None:
                    await self.drained
                t.write(view[off : off + CHUNK])
        return await waiter


async def _connect(url: str, ctx: ssl.SSLContext | None = None) -> tuple[Proto, bytes]:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Proto, host, port, ssl=ctx, server_hostname=host if ctx else None)
    return proto, f"{host}:{port}".encode()


class Async:
    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.all: list[Proto] = []

    async def start(self) -> None:
        self.pool: asyncio.Queue[Proto | None] = asyncio.Queue()
        for _ in range(self.connections):
            self.pool.put_nowait(None)  # a free slot: connect on first use

    async def _roundtrip(self, url: str, path: bytes, body: bytes | None = None) -> tuple[int, int]:
        proto = await self.pool.get()
        try:
            if proto is None:
                proto, self.host = await _connect(url)
                self.all.append(proto)
            if body is None:
                head = b"GET " + path + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n\r\n"
            else:
                head = (
                    b"POST "
                    + path
                    + b" HTTP/1.1\r\nHost: "
                    + self.host
                    + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                )
            return await proto.roundtrip(head, body)
        finally:
            self.pool.put_nowait(proto)

    async def get(self, url: str) -> tuple[int, int]:
        return await self._roundtrip(url, b"/")

    async def download(self, url: str) -> tuple[int, int]:
        return await self._roundtrip(url, b"/16m")

    async def upload(self, url: str, body: bytes) -> tuple[int, int]:
        return await self._roundtrip(url, b"/sink", body)

    async def close(self) -> None:
        for p in self.all:
            if p.transport is not None:
                p.transport.close()

    @staticmethod
    async def tls_get(url: str, ca: str) -> tuple[int, int]:
        proto, host = await _connect(url, ssl.create_default_context(cafile=ca))
        try:
            return await proto.roundtrip(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        finally:
            assert proto.transport is not None
            proto.transport.close()


if __name__ == "__main__":
    _common.main(None, Async)
