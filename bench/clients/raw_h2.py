"""Floor: a bare HTTP/2 client, an asyncio.Protocol over TLS (ALPN h2) driving
`h2.connection.H2Connection` directly.

One connection, opened in start(); a hard-coded header list (GET / with the four
pseudo-headers, no validation or normalisation of what we send, which is known good;
the server's frames are validated by h2 as usual); the status is the first response
header (pseudo-headers come first), the body is only counted; one future per stream.
Frames from data_received() go out in one write at its end; requests queued by the
tasks of one event-loop turn go out in one write too (a call_soon flush), so 100
streams cost few syscalls.  No concurrency limit (nginx allows 128 streams, the
scenarios use at most 100), no reconnects, no timeouts: the least any h2-based
client on asyncio has to do, ours included.  Needs only h2 (in bench/.venv-peers).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import _common
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, ResponseReceived, StreamEnded, StreamReset


class Proto(asyncio.Protocol):
    def __init__(self) -> None:
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = H2Connection(config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, list] = {}  # stream id -> [future, status, body bytes]
        self.flushing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        h2 = self.h2
        streams = self.streams
        for ev in h2.receive_data(data):
            t = type(ev)
            if t is DataReceived:
                streams[ev.stream_id][2] += len(ev.data)
                h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif t is ResponseReceived:
                streams[ev.stream_id][1] = int(ev.headers[0][1])
            elif t is StreamEnded:
                fut, status, n = streams.pop(ev.stream_id)
                if not fut.done():
                    fut.set_result((status, n))
            elif t is StreamReset or t is ConnectionTerminated:
                self._fail(ConnectionError(f"h2: {ev}"))
        out = h2.data_to_send()
        if out:
            self.transport.write(out)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        for fut, _, _ in self.streams.values():
            if not fut.done():
                fut.set_exception(exc)
        self.streams.clear()

    def _flush(self) -> None:
        self.flushing = False
        out = self.h2.data_to_send()
        if out:
            self.transport.write(out)  # type: ignore[union-attr]

    def request(self, headers: list[tuple[bytes, bytes]]) -> asyncio.Future[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        sid = self.h2.get_next_available_stream_id()
        fut: asyncio.Future[tuple[int, int]] = loop.create_future()
        self.streams[sid] = [fut, 0, 0]
        self.h2.send_headers(sid, headers, end_stream=True)
        if not self.flushing:
            self.flushing = True
            loop.call_soon(self._flush)
        return fut


class H2:
    def __init__(self, connections: int, ca: str) -> None:
        assert connections == 1, "the bare-h2 floor keeps a single connection"
        self.ca = ca

    async def start(self) -> None:
        self.proto: Proto | None = None
        self.connecting: asyncio.Future[Proto] | None = None

    async def _connect(self, url: str) -> Proto:
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 443
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.set_alpn_protocols(["h2"])
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(Proto, host, port, ssl=ctx, server_hostname=host)
        if transport.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
            transport.close()
            raise ConnectionError("the server did not select h2 by ALPN")
        self.headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", f"{host}:{port}".encode()),
            (b":path", b"/"),
        ]
        return proto

    async def get(self, url: str) -> tuple[int, int]:
        proto = self.proto
        if proto is None:  # the first request connects (in the warm-up), like the other clients
            if self.connecting is None:
                self.connecting = asyncio.ensure_future(self._connect(url))
            self.proto = proto = await self.connecting
        return await proto.request(self.headers)

    async def version(self, url: str) -> str:
        await self.get(url)
        return "HTTP/2"  # ALPN said h2, and the H2Connection parsed the frames

    async def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()


if __name__ == "__main__":
    _common.main(None, None, H2)
