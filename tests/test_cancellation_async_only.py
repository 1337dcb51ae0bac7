"""Cancellation at any await point leaves the pool consistent (asyncio).

The systematic test runs one request per kind and cancels it after its 1st, 2nd, ...
k-th step on the event loop, until a run completes uncancelled. After every cancelled
run the pool must hold no slot, no waiter, no half-read HTTP/1.1 connection and no
open HTTP/2 stream, every socket it opened must be open only if the pool still holds
its connection, and the next request must succeed at once. The targeted tests pin the
defects this found: a cancellation inside a trace callback used to leave a connection
ACTIVE in the pool (the next request spun forever) or leak the socket just connected.
"""

from __future__ import annotations

import asyncio
import ssl
import types
import typing
from collections.abc import AsyncIterator, Callable

import pytest

import httpcore
from httpcore import _trace
from httpcore._backends.asyncio_backend import AsyncioBackend, AsyncioStream
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory

MAX_STEPS = 400  # bound on the cancellation points tried per kind


class TrackingBackend(AsyncioBackend):
    """The asyncio backend, remembering every stream it opened."""

    def __init__(self) -> None:
        self.streams: list[AsyncioStream] = []

    async def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> AsyncioStream:
        stream = await super().connect_tcp(*args, **kwargs)
        self.streams.append(stream)
        return stream

    def open_sockets(self) -> int:
        return sum(1 for stream in self.streams if not stream._transport.is_closing())

    async def at_most_open(self, count: int) -> bool:
        """True once no more than ``count`` sockets are open; a TLS close waits for the
        peer's reply."""
        for _ in range(200):
            if self.open_sockets() <= count:
                return True
            await asyncio.sleep(0.01)
        return False


def protocol_of(connection: typing.Any) -> typing.Any:
    return getattr(connection, "_connection", None)


async def assert_consistent(pool: httpcore.AsyncConnectionPool, backend: TrackingBackend) -> None:
    assert all(count == 0 for count in pool._load.values()), pool._load
    assert not pool._waiters and not pool._queued and not pool._connecting
    held = 0
    for connection in pool.connections:
        inner = protocol_of(connection)
        if inner is None:
            continue
        if isinstance(inner, httpcore.AsyncHTTP11Connection):
            assert inner.is_idle() or inner.is_closed(), inner
        else:
            assert not inner._streams, inner  # every stream reset and counted out
        held += 0 if inner.is_closed() else 1
    assert await backend.at_most_open(held), (backend.open_sockets(), pool.connections)


async def upload_body() -> AsyncIterator[bytes]:
    for _ in range(4):
        yield b"x" * 65536


Kind = Callable[[httpcore.AsyncConnectionPool, str], typing.Coroutine[typing.Any, typing.Any, None]]


async def get(pool: httpcore.AsyncConnectionPool, url: str) -> None:
    r = await pool.request("GET", url + "/")
    assert r.body == b"Hello, world!"


async def download(pool: httpcore.AsyncConnectionPool, url: str) -> None:
    async with pool.stream("GET", url + "/stream?size=300000&chunk=30000") as r:
        total = 0
        async for chunk in r.stream():
            total += len(chunk)
        assert total == 300000


async def upload(pool: httpcore.AsyncConnectionPool, url: str) -> None:
    r = await pool.request("POST", url + "/upload", body=upload_body())
    assert b'"length":262144' in r.body.replace(b" ", b"")


BACKGROUND: list[asyncio.Future[None]] = []  # tasks a kind starts beside the counted one


async def behind_another(pool: httpcore.AsyncConnectionPool, url: str) -> None:
    """Waits for the pool's only connection, held by a concurrent download."""
    BACKGROUND.append(asyncio.ensure_future(download(pool, url)))
    await get(pool, url)


KINDS: dict[str, Kind] = {
    "get": get,
    "download": download,
    "upload": upload,
    "pool-wait": behind_another,
}


@types.coroutine
def cancel_at(
    coro: typing.Coroutine[typing.Any, typing.Any, None], k: int
) -> typing.Generator[typing.Any, typing.Any, bool]:
    """Run ``coro`` in the calling task, cancelling it at its k-th suspension exactly as
    Task.cancel() would (the awaited future cancelled, CancelledError thrown in at that
    await). True if it completed before its k-th suspension."""
    suspensions = 0
    to_send: typing.Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            awaited = coro.send(to_send) if to_throw is None else coro.throw(to_throw)
        except StopIteration:
            return True
        suspensions += 1
        if suspensions == k:
            if isinstance(awaited, asyncio.Future):
                awaited.cancel()
            to_send, to_throw = None, asyncio.CancelledError()
            continue
        try:
            to_send, to_throw = (yield awaited), None
        except BaseException as exc:  # noqa: BLE001 - the task was cancelled: pass it on
            to_send, to_throw = None, exc


async def cancel_at_every_step(
    make_pool: Callable[[TrackingBackend], httpcore.AsyncConnectionPool], url: str, kind: Kind
) -> int:
    """Cancel ``kind`` at its 1st, 2nd, ... suspension until it completes; returns the
    number of suspensions it has."""
    for k in range(1, MAX_STEPS):
        backend = TrackingBackend()
        async with make_pool(backend) as pool:
            try:
                completed = await cancel_at(kind(pool, url), k)
            except asyncio.CancelledError:
                completed = False
            await asyncio.gather(*BACKGROUND, return_exceptions=True)
            BACKGROUND.clear()
            await assert_consistent(pool, backend)
            await asyncio.wait_for(get(pool, url), 5.0)  # the pool still works
        assert await backend.at_most_open(0)
        if completed:
            return k
    raise AssertionError(f"not complete after {MAX_STEPS} suspensions")  # pragma: no cover


@pytest.mark.parametrize("kind", list(KINDS))
async def test_cancel_http11_at_every_step(server: UvicornServer, kind: str) -> None:
    def make_pool(backend: TrackingBackend) -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(max_connections=1, network_backend=backend, timeout=5.0)

    assert await cancel_at_every_step(make_pool, server.url, KINDS[kind]) > 1


@pytest.mark.parametrize("kind", list(KINDS))
async def test_cancel_http2_tls_at_every_step(
    h2_server: HypercornServer, client_ssl_context: ssl.SSLContext, kind: str
) -> None:
    def make_pool(backend: TrackingBackend) -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            ssl_context=client_ssl_context,
            http2=True,
            max_connections=1,
            network_backend=backend,
            timeout=5.0,
        )

    assert await cancel_at_every_step(make_pool, h2_server.url, KINDS[kind]) > 1


async def test_cancel_http11_tls_handshake_at_every_step(
    tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    def make_pool(backend: TrackingBackend) -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            ssl_context=client_ssl_context, network_backend=backend, timeout=5.0
        )

    assert await cancel_at_every_step(make_pool, tls_server.url, get) > 1


TRACE_EVENTS = [
    name + suffix
    for name in _trace.STEPS
    # None of these happens here (SOCKS: tests/test_socks_async_only.py).
    if name not in (_trace.CONNECT_UNIX_SOCKET, _trace.RETRY, _trace.SETUP_SOCKS5_CONNECTION)
    for suffix in (_trace.STARTED, _trace.COMPLETE)
]


@pytest.mark.parametrize("event", TRACE_EVENTS)
async def test_cancel_inside_trace_callback(
    h2_server: HypercornServer, client_ssl_context: ssl.SSLContext, event: str
) -> None:
    """Cancelled while the library awaits the trace callback: nothing stays ACTIVE in
    the pool, no socket is left open, and the next request succeeds within its timeout."""
    http2 = event.startswith("http2.")
    seen: list[str] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        seen.append(name)
        if name == event:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)

    backend = TrackingBackend()
    async with httpcore.AsyncConnectionPool(
        ssl_context=client_ssl_context,
        http1=not http2,
        http2=http2,
        max_connections=1,
        network_backend=backend,
    ) as pool:
        with pytest.raises(asyncio.CancelledError):
            await pool.request("GET", h2_server.url + "/", extensions={"trace": trace})
        assert event in seen
        await assert_consistent(pool, backend)
        r = await pool.request("GET", h2_server.url + "/", timeout=2.0)
        assert r.body == b"Hello, world!"
    assert await backend.at_most_open(0)


async def test_close_ends_requests_in_flight(raw_server: RawServerFactory) -> None:
    """close() while a request waits on a kept-alive connection: it ends at once with
    PoolClosed, and is not retried on a connection opened inside the closed pool."""

    def first_only(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.read_request()
        conn.sleep(10)  # never answers the second

    srv = raw_server(first_only)
    pool = httpcore.AsyncConnectionPool(timeout=5.0)
    assert (await pool.request("GET", srv.url + "/")).body == b"ok"
    in_flight = asyncio.ensure_future(pool.request("GET", srv.url + "/"))
    while len(srv.requests) < 2:
        await asyncio.sleep(0.01)
    await pool.aclose()
    with pytest.raises(httpcore.PoolClosed):
        await asyncio.wait_for(in_flight, 2.0)
    assert pool.connections == []
    assert srv.connections_accepted == 1
    with pytest.raises(httpcore.PoolClosed):
        await pool.request("GET", srv.url + "/")
