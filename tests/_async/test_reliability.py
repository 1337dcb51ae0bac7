"""Reliability: timeouts as deadlines, bodies never silently resent, dropped responses.

Each of these once failed (the reproductions in ``shared/repro``): a sync write timeout
that fired after three times its value, a streamed POST resent empty after a GOAWAY and
reported as a success, and one HTTP/2 response dropped unclosed closing the connection
under its neighbours.
"""

from __future__ import annotations

import gc
import time
import typing

import pytest

import httpcore
from tests.servers.asgi_server import HypercornServer
from tests.servers.h2raw import H2Peer, h2_handler
from tests.servers.raw import RawConnection, RawServerFactory, per_connection

# Generous against a loaded machine, yet far below the multiples a timeout that
# restarted on every partial write (or every read) would take.
SLACK = 0.5


def never_reads(conn: RawConnection) -> None:
    conn.sleep(10)


def head_then_stall(conn: RawConnection) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    conn.sleep(10)


async def test_write_timeout_is_a_deadline_for_the_whole_write(raw_server: RawServerFactory) -> None:
    srv = raw_server(never_reads)
    timeout = httpcore.Timeout(connect=5.0, read=5.0, write=0.5, pool=5.0)
    async with httpcore.AsyncConnectionPool(timeout=timeout) as pool:
        start = time.monotonic()
        with pytest.raises(httpcore.WriteTimeout):
            await pool.request("POST", srv.url + "/", body=b"x" * (32 << 20))
        elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 0.5 + SLACK


async def test_read_timeout_is_a_deadline_for_each_wait(raw_server: RawServerFactory) -> None:
    srv = raw_server(head_then_stall)
    timeout = httpcore.Timeout(connect=5.0, read=0.5, write=5.0, pool=5.0)
    async with httpcore.AsyncConnectionPool(timeout=timeout) as pool:
        response = await pool.request("GET", srv.url + "/", stream=True)
        start = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            await response.aread()
        elapsed = time.monotonic() - start
        assert pool.connections == []
    assert 0.45 <= elapsed < 0.5 + SLACK


async def test_pool_timeout_is_a_deadline(raw_server: RawServerFactory) -> None:
    srv = raw_server(head_then_stall)
    timeout = httpcore.Timeout(connect=5.0, read=5.0, write=5.0, pool=0.5)
    async with httpcore.AsyncConnectionPool(timeout=timeout, max_connections=1) as pool:
        held = await pool.request("GET", srv.url + "/", stream=True)
        start = time.monotonic()
        with pytest.raises(httpcore.PoolTimeout):
            await pool.request("GET", srv.url + "/")
        elapsed = time.monotonic() - start
        await held.aclose()
    assert 0.45 <= elapsed < 0.5 + SLACK


async def test_connect_timeout_covers_the_tls_handshake(raw_server: RawServerFactory) -> None:
    srv = raw_server(never_reads)  # accepts, then never answers the ClientHello
    timeout = httpcore.Timeout(connect=0.5, read=5.0, write=5.0, pool=5.0)
    async with httpcore.AsyncConnectionPool(timeout=timeout) as pool:
        start = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await pool.request("GET", srv.url.replace("http://", "https://") + "/")
        elapsed = time.monotonic() - start
        assert pool.connections == []
    assert 0.45 <= elapsed < 0.5 + SLACK


async def test_goaway_never_resends_a_streamed_body(raw_server: RawServerFactory) -> None:
    """The server refuses the stream unprocessed after the body started: the request
    fails, where a retry would send what is left of a consumed iterator."""

    def refuse(peer: H2Peer) -> None:
        peer.wait_headers(1)
        peer.goaway(last_stream_id=0)
        peer.wait_closed()

    def answer(peer: H2Peer) -> None:  # pragma: no cover - must never be reached
        peer.serve_forever()

    srv = raw_server(per_connection(h2_handler(refuse), h2_handler(answer)))
    sent: list[bytes] = []

    async def body() -> typing.AsyncIterator[bytes]:
        for chunk in (b"one", b"two", b"three"):
            sent.append(chunk)
            yield chunk

    async with httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=5.0) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="cannot be sent again"):
            await pool.request("POST", srv.url + "/upload", body=body())
        assert pool.connections == []
    assert srv.connections_accepted == 1
    assert sent == [b"one", b"two", b"three"]  # consumed once, never again


async def test_goaway_resends_a_bytes_body(raw_server: RawServerFactory) -> None:
    def refuse(peer: H2Peer) -> None:
        peer.wait_headers(1)
        peer.goaway(last_stream_id=0)
        peer.wait_closed()

    def answer(peer: H2Peer) -> None:
        peer.serve_forever(timeout=5.0)

    srv = raw_server(per_connection(h2_handler(refuse), h2_handler(answer)))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=5.0) as pool:
        r = await pool.request("POST", srv.url + "/upload", body=b"payload")
        assert r.body == b"ok:/upload"
    assert srv.connections_accepted == 2


async def test_dropped_http2_response_resets_only_its_stream(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=5.0) as pool:
        url = h2c_server.url + "/slow_body?delay=0.2"
        kept = await pool.request("GET", url, stream=True)
        dropped = await pool.request("GET", url, stream=True)
        [connection] = pool.connections
        del dropped
        gc.collect()
        # The next call of the pool closes the dropped response: its stream is reset,
        # the connection and the response still in flight on it carry on.
        r = await pool.request("GET", h2c_server.url + "/")
        assert r.body == b"Hello, world!"
        assert await kept.aread() == b"startend"
        assert pool.connections == [connection]
        assert not connection.is_closed()
        assert connection.capacity() > 1
        assert (await pool.request("GET", h2c_server.url + "/")).status_code == 200
        assert pool.connections == [connection]
