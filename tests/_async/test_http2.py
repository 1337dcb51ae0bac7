"""HTTP/2: ALPN and prior knowledge, streaming both ways, flow control, cancellation,
GOAWAY, resets, SETTINGS changes and broken servers.

Well-behaved peers are hypercorn (``h2_server`` over TLS with ALPN, ``h2c_server`` with
prior knowledge); faults come from the scriptable h2 peer in ``tests/servers/h2raw.py``.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import sys
import time
import typing
from collections.abc import AsyncIterator, Iterator

import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

import httpcore
from httpcore._async import http2
from httpcore._exceptions import ConnectionNotAvailable
from tests.concurrency import async_sleep
from tests.servers.app import pattern
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.h2raw import H2Peer, h2_handler
from tests.servers.netutil import has_ipv6_loopback
from tests.servers.raw import RawServerFactory, per_connection

TIMEOUT = httpcore.Timeout(5.0)
MiB = 1024 * 1024


def only_connection(pool: httpcore.AsyncConnectionPool) -> typing.Any:
    """The HTTP/2 connection inside the pool's single connection."""
    [connection] = pool.connections
    return typing.cast(typing.Any, connection)._connection


def serve(peer: H2Peer) -> None:
    peer.serve_forever()


async def pattern_chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield pattern(size, index * size)


# -- protocol selection -----------------------------------------------------------


async def test_alpn_selects_http2(h2_server: HypercornServer, client_ssl_context: ssl.SSLContext) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        r = await pool.request("GET", h2_server.url + "/")
        assert r.status_code == 200
        assert r.body == b"Hello, world!"
        assert r.http_version == b"HTTP/2"
        assert r.reason_phrase == b""
        assert r.extensions["stream_id"] == 1
        assert r.extensions["network_stream"] is not None
        assert all(type(name) is bytes and type(value) is bytes for name, value in r.headers)
        assert (b"content-type", b"text/plain") in r.headers
        r = await pool.request("GET", h2_server.url + "/")
        assert r.extensions["stream_id"] == 3
        connection = only_connection(pool)
        assert isinstance(connection, http2.AsyncHTTP2Connection)
        assert "IDLE" in repr(connection)


async def test_alpn_falls_back_to_http11(
    tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        r = await pool.request("GET", tls_server.url + "/")
        assert r.http_version == b"HTTP/1.1"
        assert r.body == b"Hello, world!"


async def test_http2_only_over_tls(h2_server: HypercornServer, client_ssl_context: ssl.SSLContext) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http1=False, http2=True) as pool:
        r = await pool.request("GET", h2_server.url + "/")
        assert r.http_version == b"HTTP/2"


async def test_prior_knowledge_over_plain_tcp(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request("GET", h2c_server.url + "/echo_headers")
        assert r.http_version == b"HTTP/2"
        assert json.loads(r.body)["http_version"] == "2"


async def test_prior_knowledge_to_http11_server(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="HTTP/1"):
            await pool.request("GET", server.url + "/")


async def test_http2_without_h2_installed(
    monkeypatch: pytest.MonkeyPatch, h2c_server: HypercornServer
) -> None:
    monkeypatch.setitem(sys.modules, "h2", None)
    with pytest.raises(httpcore.UnsupportedProtocol, match="pip install"):
        httpcore.AsyncConnectionPool(http2=True)
    async with httpcore.AsyncConnectionPool() as pool:
        r = await pool.request("GET", h2c_server.url + "/")
        assert r.http_version == b"HTTP/1.1"


async def test_protocol_module_missing_at_connect(
    monkeypatch: pytest.MonkeyPatch, h2c_server: HypercornServer
) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        monkeypatch.setitem(sys.modules, http2.__name__, None)
        with pytest.raises(httpcore.UnsupportedProtocol, match="h2"):
            await pool.request("GET", h2c_server.url + "/")


# -- requests and responses -------------------------------------------------------


async def test_request_headers(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request(
            "GET",
            h2c_server.url + "/echo_headers?x=1",
            headers=[
                (b"Host", b"example.org"),
                (b"X-Mixed-Case", b"Value"),
                (b"Connection", b"keep-alive"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Transfer-Encoding", b"chunked"),
                (b"Upgrade", b"h2c"),
                (b"Proxy-Connection", b"close"),
                (b"TE", b"gzip"),
            ],
        )
        echoed = json.loads(r.body)
        headers = dict(echoed["headers"])
        assert headers["host"] == "example.org"
        assert headers["x-mixed-case"] == "Value"
        for name in ("connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"):
            assert name not in headers
        assert echoed["query_string"] == "x=1"
        r = await pool.request("GET", h2c_server.url + "/echo_headers", headers=[(b"te", b"trailers")])
        headers = dict(json.loads(r.body)["headers"])
        port = h2c_server.url.rsplit(":", 1)[1]
        assert headers["host"] == f"127.0.0.1:{port}"
        assert headers["te"] == "trailers"


async def test_response_headers_and_statuses(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request("GET", h2c_server.url + "/headers_out?X-One=1&x-two=2&x-two=3")
        assert [(k, v) for k, v in r.headers if k.startswith(b"x-")] == [
            (b"x-one", b"1"),
            (b"x-two", b"2"),
            (b"x-two", b"3"),
        ]
        for code in (204, 304, 404, 500):
            r = await pool.request("GET", h2c_server.url + f"/status/{code}")
            assert r.status_code == code
        r = await pool.request("HEAD", h2c_server.url + "/")
        assert r.status_code == 200
        assert r.body == b""


async def test_request_bodies(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request("POST", h2c_server.url + "/echo_body", body=b"hello")
        assert r.body == b"hello"
        r = await pool.request("POST", h2c_server.url + "/echo_body", body=b"")
        assert r.body == b""
        big = pattern(300_000)
        r = await pool.request("PUT", h2c_server.url + "/echo_body", body=big)
        assert r.body == big
        r = await pool.request("POST", h2c_server.url + "/echo_body", body=pattern_chunks(5, 1000))
        assert r.body == pattern(5000)
        r = await pool.request(
            "POST",
            h2c_server.url + "/echo_body",
            headers=[(b"content-length", b"4")],
            body=pattern_chunks(2, 2),
        )
        assert r.body == pattern(4)
        r = await pool.request("DELETE", h2c_server.url + "/echo_headers", body=b"")
        assert "content-length" not in dict(json.loads(r.body)["headers"])
        only_connection(pool)  # all on one connection


async def test_body_chunk_type_checked(h2c_server: HypercornServer) -> None:
    async def bad_body() -> AsyncIterator[typing.Any]:
        yield "text"

    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        body = bad_body()
        with pytest.raises(TypeError):
            await pool.request("POST", h2c_server.url + "/echo_body", body=body)
        await typing.cast(typing.Any, body).aclose()  # the caller's generator: the caller closes it
        r = await pool.request("GET", h2c_server.url + "/")
        assert r.status_code == 200


async def test_large_download_streams_with_bounded_buffer(h2c_server: HypercornServer) -> None:
    size = 64 * MiB
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        async with pool.stream("GET", h2c_server.url + f"/stream?size={size}&chunk=262144") as r:
            assert r.status_code == 200
            stream = r.stream()
            received = len(await stream.__anext__())
            await async_sleep(0.2)  # a slow reader: the server must wait for us
            state = stream._stream._stream
            assert sum(len(chunk) for chunk, _ in state.chunks) <= http2.STREAM_WINDOW
            digest = hashlib.sha256(pattern(received))
            async for chunk in stream:
                assert len(chunk) <= http2.STREAM_WINDOW
                digest.update(chunk)
                received += len(chunk)
        assert received == size
        expected = hashlib.sha256()
        for offset in range(0, size, MiB):
            expected.update(pattern(MiB, offset))
        assert digest.hexdigest() == expected.hexdigest()


async def test_large_upload(h2c_server: HypercornServer) -> None:
    count = 64
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request("POST", h2c_server.url + "/upload", body=pattern_chunks(count, MiB))
        result = json.loads(r.body)
        expected = hashlib.sha256()
        for index in range(count):
            expected.update(pattern(MiB, index * MiB))
        assert result["length"] == count * MiB
        assert result["sha256"] == expected.hexdigest()
        # A later request reuses the connection: nothing was left unread.
        r = await pool.request("GET", h2c_server.url + "/")
        assert r.status_code == 200
        only_connection(pool)


@pytest.fixture(scope="module")
def h2c_unlimited() -> Iterator[HypercornServer]:
    """hypercorn h2c without its limit of 1000 requests per connection."""
    srv = HypercornServer()
    srv.config.keep_alive_max_requests = 1_000_000
    with srv:
        yield srv


async def test_streaming_response_and_early_close(h2c_unlimited: HypercornServer) -> None:
    h2c_server = h2c_unlimited
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        async with pool.stream("GET", h2c_server.url + "/stream?size=100000&chunk=1000") as r:
            body = b"".join([chunk async for chunk in r.stream()])
        assert body == pattern(100000)
        for _ in range(1000):
            async with pool.stream("GET", h2c_server.url + "/stream?size=300000&chunk=16384") as r:
                await r.stream().__anext__()
        connection = only_connection(pool)
        assert connection._streams == {}
        assert not [s for s in connection._h2.streams.values() if s.open]
        assert len(connection._h2.streams) <= 2 * 100 + 64  # h2 drops closed streams now and then
        r = await pool.request("GET", h2c_server.url + f"/fixed?size={4 * MiB}")
        assert len(r.body) == 4 * MiB
        assert only_connection(pool) is connection


async def test_read_response_twice_and_after_end(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request("GET", h2c_server.url + "/", stream=True)
        stream = r.stream()
        assert await r.aread() == b"Hello, world!"
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        await r.aclose()


async def test_read_timeout_fails_only_its_stream(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await pool.request("GET", h2c_server.url + "/")
        connection = only_connection(pool)
        with pytest.raises(httpcore.ReadTimeout):
            await pool.request("GET", h2c_server.url + "/slow_headers?delay=1", timeout=0.1)
        async with pool.stream("GET", h2c_server.url + "/slow_body?delay=1", timeout=0.1) as r:
            with pytest.raises(httpcore.ReadTimeout):
                await r.aread()
        r = await pool.request("GET", h2c_server.url + "/")
        assert r.status_code == 200
        assert only_connection(pool) is connection


async def test_keepalive_expiry(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True, keepalive_expiry=0.05) as pool:
        await pool.request("GET", h2c_server.url + "/")
        first = only_connection(pool)
        assert not first.has_expired()
        await async_sleep(0.1)
        assert first.has_expired()
        await pool.request("GET", h2c_server.url + "/")
        assert only_connection(pool) is not first
        assert first.is_closed()


async def test_trace_events(h2c_server: HypercornServer) -> None:
    events: list[str] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        events.append(name)

    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await pool.request(
            "POST", h2c_server.url + "/echo_body", body=pattern(200_000), extensions={"trace": trace}
        )
    assert events == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "http2.send_connection_init.started",
        "http2.send_connection_init.complete",
        "http2.send_request_headers.started",
        "http2.send_request_headers.complete",
        "http2.send_request_body.started",
        "http2.send_request_body.complete",
        "http2.receive_response_headers.started",
        "http2.receive_response_headers.complete",
        "http2.receive_response_body.started",
        "http2.receive_response_body.complete",
        "http2.response_closed.started",
        "http2.response_closed.complete",
    ]


async def test_direct_connection_use(h2c_server: HypercornServer) -> None:
    origin = httpcore.URL(h2c_server.url).origin
    connection = httpcore.AsyncHTTPConnection(origin, http1=False, http2=True)
    r = await connection.handle_async_request(httpcore.Request("GET", h2c_server.url + "/"))
    assert await r.aread() == b"Hello, world!"
    assert connection.capacity() == 100
    assert not connection.is_closed()
    await connection.aclose()
    assert connection.is_closed()
    assert connection.capacity() == 0
    with pytest.raises(ConnectionNotAvailable):
        await connection.handle_async_request(httpcore.Request("GET", h2c_server.url + "/"))


# -- faults, from a scripted HTTP/2 peer ---------------------------------------------


def pool_for(**kwargs: typing.Any) -> httpcore.AsyncConnectionPool:
    return httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=TIMEOUT, **kwargs)


async def test_goaway_mid_flight(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"first-", end=False)
        peer.wait_headers(3)
        peer.goaway(last_stream_id=1)
        peer.send_body(1, b"part")
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        async with pool.stream("GET", srv.url + "/a") as first:
            connection = only_connection(pool)
            assert connection.capacity() == 100
            r = await pool.request("GET", srv.url + "/b")  # refused by the GOAWAY: retried
            assert r.body == b"ok:/b"
            assert connection.capacity() == 0
            assert connection.has_expired()
            assert not connection.is_closed(), (
                connection._error,
                connection._closed,
            )  # the first response is still coming
            assert await first.aread() == b"first-part"
        assert connection.is_closed()
        r = await pool.request("GET", srv.url + "/c")
        assert r.body == b"ok:/c"
    assert srv.connections_accepted == 2


async def test_goaway_on_idle_connection_is_noticed(
    raw_server: RawServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one")
        peer.conn.sleep(0.2)  # after the client's next request has gone out
        peer.goaway(last_stream_id=1)
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        connection = only_connection(pool)
        # Pretend the GOAWAY is still in flight when the pool checks the connection.
        monkeypatch.setattr(type(connection), "has_expired", lambda self: False)
        r = await pool.request("POST", srv.url + "/2", body=b"x")
        assert r.body == b"ok:/2"
    assert srv.connections_accepted == 2


async def test_goaway_read_while_idle(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one")
        peer.conn.sleep(0.1)
        peer.goaway(last_stream_id=1)
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        first = only_connection(pool)
        await async_sleep(0.3)  # the GOAWAY waits, unread
        assert not first.has_expired()
        assert (await pool.request("POST", srv.url + "/2", body=b"x")).body == b"ok:/2"
        assert first.is_closed() and first._stream_closed
    assert srv.connections_accepted == 2


async def test_goaway_with_error_fails_streams(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.goaway(last_stream_id=1, error_code=ErrorCodes.ENHANCE_YOUR_CALM)
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=r"ENHANCE_YOUR_CALM.*not idempotent"):
            await pool.request("POST", srv.url + "/", body=b"x")
        assert pool.connections == []
        # Nothing came back on the stream: an idempotent request is sent again, once.
        assert (await pool.request("GET", srv.url + "/again")).body == b"ok:/again"
    assert srv.connections_accepted == 3


async def test_server_reset_fails_only_its_stream(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.reset(1, ErrorCodes.INTERNAL_ERROR)
        peer.wait_stream(3)
        peer.respond(3, body=b"head", end=False)
        peer.wait_stream(5)
        peer.respond(5, body=b"fine")
        peer.reset(3, ErrorCodes.CANCEL)
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="INTERNAL_ERROR"):
            await pool.request("GET", srv.url + "/reset")
        async with pool.stream("GET", srv.url + "/partial") as partial:
            assert (await pool.request("GET", srv.url + "/ok")).body == b"fine"
            with pytest.raises(httpcore.RemoteProtocolError, match="CANCEL"):
                await partial.aread()
    assert srv.connections_accepted == 1


async def test_refused_stream(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.reset(1, ErrorCodes.REFUSED_STREAM)  # before our SETTINGS got there: go elsewhere
        peer.wait_stream(3)
        peer.respond(3, body=b"three")
        peer.wait_stream(5)
        peer.reset(5, ErrorCodes.REFUSED_STREAM)  # later: sent again once if idempotent
        peer.wait_stream(7)
        peer.reset(7, ErrorCodes.REFUSED_STREAM)  # a GET: sent again, on a new connection
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        assert (await pool.request("POST", srv.url + "/1", body=b"x")).body == b"three"
        with pytest.raises(httpcore.RemoteProtocolError, match=r"refused stream 5.*not idempotent"):
            await pool.request("POST", srv.url + "/2", body=b"x")
        assert (await pool.request("GET", srv.url + "/3")).body == b"ok:/3"
    assert srv.connections_accepted == 2


async def test_settings_changes_mid_connection(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.update_settings(
            {
                SettingCodes.MAX_CONCURRENT_STREAMS: 1,
                SettingCodes.INITIAL_WINDOW_SIZE: 1000,
                SettingCodes.MAX_FRAME_SIZE: 32768,
            }
        )
        peer.respond(1, body=b"one")
        request = peer.wait_stream(3)
        peer.respond(3, body=b"%d %d" % (len(request.body), max(request.frame_sizes)))
        peer.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        request = peer.wait_stream(5)
        peer.respond(5, body=b"%d %d" % (len(request.body), max(request.frame_sizes)))
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        connection = only_connection(pool)
        assert connection.capacity() == 1
        r = await pool.request("POST", srv.url + "/2", body=pattern(50_000))
        assert r.body == b"50000 1000"  # cut to the 1000-byte stream window
        r = await pool.request("POST", srv.url + "/3", body=pattern(200_000))
        assert r.body == b"200000 32768"  # then to the larger frame size
    assert srv.connections_accepted == 1


async def test_stalled_window_times_out_and_reads_lazily(raw_server: RawServerFactory) -> None:
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 1000

    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"before")
        peer.wait(lambda: peer.requests.get(3) is not None and peer.requests[3].reset)
        peer.wait_stream(5)
        peer.respond(5, body=b"after")
        peer.wait_closed()

    srv = raw_server(h2_handler(script, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1500}, auto_window=False))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/first")).body == b"before"  # settings now known
        upload = body()
        with pytest.raises(httpcore.WriteTimeout):
            await pool.request("POST", srv.url + "/", body=upload, timeout=httpcore.Timeout(5.0, write=0.2))
        await typing.cast(typing.Any, upload).aclose()  # the caller's generator: the caller closes it
        assert pulled <= 3
        assert (await pool.request("GET", srv.url + "/next")).body == b"after"
    assert srv.connections_accepted == 1


async def test_early_response_stops_upload(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        for stream_id in (1, 3):
            peer.wait_headers(stream_id)
            peer.respond(stream_id, 413, body=b"too big")
            peer.reset(stream_id, ErrorCodes.NO_ERROR)
        peer.wait_stream(5)
        peer.respond(5, body=b"next")
        peer.wait_closed()

    srv = raw_server(h2_handler(script, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000}, auto_window=False))
    async with pool_for() as pool:
        r = await pool.request("POST", srv.url + "/", body=pattern(100_000))
        assert r.status_code == 413
        assert r.body == b"too big"
        r = await pool.request("POST", srv.url + "/", body=[b"x" * 1000] * 100)
        assert r.status_code == 413
        assert (await pool.request("GET", srv.url + "/")).body == b"next"


async def test_response_ended_while_upload_blocked(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_headers(1)
        peer.respond(1, 200, body=b"done early")
        peer.wait_closed()

    srv = raw_server(h2_handler(script, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000}, auto_window=False))
    async with pool_for() as pool:
        upload = pattern_chunks(100, 1000)
        r = await pool.request("POST", srv.url + "/", body=upload)
        await typing.cast(typing.Any, upload).aclose()  # the caller's generator: the caller closes it
        assert r.body == b"done early"


async def test_informational_trailers_and_ping(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.h2.ping(b"12345678")
        peer.h2.send_headers(1, [(b":status", b"103"), (b"link", b"</style.css>")])
        peer.h2.send_headers(1, [(b":status", b"200"), (b"x-a", b"1")])
        peer.h2.send_data(1, b"body")
        peer.h2.send_headers(1, [(b"x-trailer", b"yes")], end_stream=True)
        peer.flush()
        peer.wait(lambda: any(type(e).__name__ == "PingAckReceived" for e in peer.events))
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        r = await pool.request("GET", srv.url + "/")
        assert r.status_code == 200
        assert r.headers == [(b"x-a", b"1")]
        assert r.body == b"body"


async def test_invalid_status_is_protocol_error(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.h2.send_headers(1, [(b":status", b"2xx")], end_stream=True)
        peer.flush()
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/")


GARBAGE = {
    "text": b"this is not HTTP/2 at all\r\n\r\n",
    "data-on-stream-0": b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x",
    "short-settings": b"\x00\x00\x05\x04\x00\x00\x00\x00\x00abcde",
    "headers-on-even-stream": b"\x00\x00\x01\x01\x05\x00\x00\x00\x02\x88",
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_garbage_frames(raw_server: RawServerFactory, garbage: bytes) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.send_raw(garbage)
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="HTTP/2 protocol"):
            await pool.request("POST", srv.url + "/", body=b"x")
        assert pool.connections == []
        assert (await pool.request("GET", srv.url + "/x")).body == b"ok:/x"


async def test_abrupt_close(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"partial", end=False)
        peer.wait_stream(3)
        peer.conn.reset()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        async with pool.stream("GET", srv.url + "/a") as first:
            with pytest.raises(httpcore.RemoteProtocolError):
                await pool.request("POST", srv.url + "/b", body=b"x")
            with pytest.raises(httpcore.RemoteProtocolError):
                await first.aread()
        assert (await pool.request("GET", srv.url + "/c")).body == b"ok:/c"


async def test_server_closed_idle_connection(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one")
        peer.conn.close(linger=0.0)

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        srv.wait_for_connections(1)
        await async_sleep(0.1)
        assert (await pool.request("POST", srv.url + "/2", body=b"x")).body == b"ok:/2"
    assert srv.connections_accepted == 2


async def test_close_after_request_sent_is_retried_only_when_idempotent(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one")
        peer.wait_headers(3)
        peer.conn.close(linger=0.0)  # no GOAWAY, no answer

    srv = raw_server(per_connection(h2_handler(script), h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        assert (await pool.request("GET", srv.url + "/2")).body == b"one"  # sent again, on connection 2
        with pytest.raises(httpcore.RemoteProtocolError, match="not idempotent"):
            await pool.request("POST", srv.url + "/3", body=b"x")
    assert srv.connections_accepted == 2


async def test_frames_while_idle_keep_the_connection(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one")
        peer.h2.ping(b"idleping")
        peer.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 50})
        peer.serve_forever()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        connection = only_connection(pool)
        await async_sleep(0.1)
        assert not connection.has_expired()
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
        assert connection.capacity() == 50
        assert only_connection(pool) is connection
    assert srv.connections_accepted == 1


async def test_pool_closed_with_response_open(h2c_server: HypercornServer) -> None:
    pool = pool_for()
    r = await pool.request("GET", h2c_server.url + "/slow_body?delay=0.5", stream=True)
    await pool.aclose()
    with pytest.raises(httpcore.ReadError):
        await r.aread()


async def test_unknown_reset_code_and_odd_data_frames(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.h2.send_headers(1, [(b":status", b"200")])
        peer.h2.send_data(1, b"", pad_length=20)  # padding only: nothing for the caller
        peer.h2.send_data(1, b"")  # an empty frame
        peer.h2.send_data(1, b"data", pad_length=3)
        peer.h2.end_stream(1)
        peer.flush()
        peer.wait_stream(3)
        peer.reset(3, 0xFF)
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/")).body == b"data"
        with pytest.raises(httpcore.RemoteProtocolError, match="error code 255"):
            await pool.request("POST", srv.url + "/", body=b"x")


async def test_ipv6_authority(raw_server: RawServerFactory) -> None:
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")

    def script(peer: H2Peer) -> None:
        request = peer.wait_stream(1)
        peer.respond(1, body=request.header(b":authority") or b"")
        peer.wait_closed()

    srv = raw_server(h2_handler(script), host="::1")
    async with pool_for() as pool:
        assert (await pool.request("GET", srv.url + "/")).body == f"[::1]:{srv.port}".encode()


async def test_stream_limit_of_a_direct_connection(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one", end=False)
        peer.wait_closed()

    srv = raw_server(h2_handler(script, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 1}))
    connection = httpcore.AsyncHTTPConnection(httpcore.URL(srv.url).origin, http1=False, http2=True)
    r = await connection.handle_async_request(httpcore.Request("GET", srv.url + "/"))
    assert r.stream() is r.stream  # the protocol's own stream object
    assert connection.capacity() == 1
    assert not connection.has_expired()  # busy, not expired
    with pytest.raises(ConnectionNotAvailable):
        await connection.handle_async_request(httpcore.Request("GET", srv.url + "/"))
    await r.aclose()
    await connection.aclose()


async def test_sync_iterable_body_and_padded_header(h2c_server: HypercornServer) -> None:
    async with pool_for() as pool:
        r = await pool.request("POST", h2c_server.url + "/echo_body", body=[b"ab", b"cd"])
        assert r.body == b"abcd"
        r = await pool.request("GET", h2c_server.url + "/echo_headers", headers=[(b"x-padded", b" value ")])
        assert dict(json.loads(r.body)["headers"])["x-padded"] == "value"


async def test_reset_after_the_last_chunk_was_sent(raw_server: RawServerFactory) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"x"
        await async_sleep(0.3)  # the server resets the stream meanwhile

    def script(peer: H2Peer) -> None:
        peer.wait(lambda: 1 in peer.requests and bool(peer.requests[1].body))
        peer.reset(1, ErrorCodes.INTERNAL_ERROR)
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="INTERNAL_ERROR"):
            await pool.request("POST", srv.url + "/", body=body())


async def test_goaway_refusing_an_answered_stream(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"head", end=False)
        peer.goaway(last_stream_id=0)  # nonsense: stream 1 was answered
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    # Whether head and GOAWAY are read apart or together, the answered stream fails and
    # is never sent elsewhere: the server may have processed it.
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="refused the stream after responding"):
            async with pool.stream("GET", srv.url + "/") as r:
                await r.aread()
    assert srv.connections_accepted == 1


async def test_frames_for_a_refused_stream_are_credited(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"first-", end=False)
        peer.wait_stream(3)
        peer.goaway(last_stream_id=1)
        peer.respond(3, end=False)  # a server that answers what it refused
        peer.conn.sleep(0.2)  # the client has forgotten stream 3 by now
        peer.send_body(3, pattern(50_000))
        peer.send_body(1, b"done")
        peer.wait_closed()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool, pool.stream("GET", srv.url + "/a") as first:
        assert (await pool.request("GET", srv.url + "/b")).body == b"ok:/b"
        assert await first.aread() == b"first-done"


async def test_connection_failure_after_a_complete_response(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"complete")
        peer.wait_stream(3)
        peer.conn.reset()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        first = await pool.request("GET", srv.url + "/1", stream=True)
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("POST", srv.url + "/2", body=b"x")
        assert await first.aread() == b"complete"  # it had all arrived


async def test_writes_to_a_dead_connection(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"partial", end=False)
        peer.wait_stream(3)
        peer.respond(3, body=b"whole")
        peer.conn.reset()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        partial = await pool.request("GET", srv.url + "/1", stream=True)
        assert (await pool.request("GET", srv.url + "/2")).body == b"whole"
        await async_sleep(0.2)  # the reset has arrived by now
        await partial.aclose()  # its RST_STREAM cannot be written: no error for the caller
    pool2 = pool_for()
    srv2 = raw_server(h2_handler(script))
    partial = await pool2.request("GET", srv2.url + "/1", stream=True)
    await pool2.request("GET", srv2.url + "/2")
    await async_sleep(0.2)
    await pool2.aclose()  # its GOAWAY cannot be written: no error either
    with pytest.raises(httpcore.ReadError):
        await partial.aread()


async def test_pool_closed_with_complete_response_unread(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.h2.send_headers(1, [(b":status", b"200")])
        peer.h2.send_data(1, b"complete", end_stream=True)
        peer.flush()  # head, body and end in one write
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    pool = pool_for()
    r = await pool.request("GET", srv.url + "/", stream=True)
    await pool.aclose()
    assert await r.aread() == b"complete"


async def test_trace_over_tls(h2_server: HypercornServer, client_ssl_context: ssl.SSLContext) -> None:
    events: list[str] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        events.append(name)

    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        await pool.request("GET", h2_server.url + "/", extensions={"trace": trace})
    assert events[:4] == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.started",
        "connection.start_tls.complete",
    ]
    assert "http2.send_request_body.started" in events  # as in httpcore 1.x, even with no body


async def test_endless_informational_responses_are_refused(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        for _ in range(100):  # would go on for ever, each well within the read timeout
            peer.h2.send_headers(1, [(b":status", b"103"), (b"link", b"</style.css>; rel=preload")])
            peer.flush()
        peer.answered.add(1)
        peer.serve_forever()

    # After our RST_STREAM, h2 takes a 1xx still in flight on that stream as a protocol
    # error of the whole connection; then the next request goes to a new connection.
    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="informational"):
            await pool.request("GET", srv.url + "/a")
        r = await pool.request("GET", srv.url + "/b")
        assert r.body == b"ok:/b"
        assert len(pool.connections) == 1


# -- a connection that goes silent ------------------------------------------------

# A DATA frame on stream 1 whose header promises 100 bytes; 10 come.
FALSE_LENGTH = b"\x00\x00\x64\x00\x00\x00\x00\x00\x01" + b"ten bytes!"
PING_FRAME_HEAD = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00"  # a PING without ACK
# The read timeout of the request that times out: its PING goes out 0.3 s before it.
SHORT = 0.6
# Generous against a loaded machine, yet far below the read timeout (5 s) of the
# requests that must not wait it out.
SILENCE_BOUND = SHORT + 0.5
# Where the server must answer within the PING's span: 0.6 s, for a loaded machine.
PATIENT = 1.2


def read_raw_until_ping(peer: H2Peer) -> None:
    """Read what the client sends, past h2 (so no PING is answered), until a PING."""
    seen = b""
    deadline = time.monotonic() + 5.0
    while PING_FRAME_HEAD not in seen and time.monotonic() < deadline:
        seen += peer.conn.recv(timeout=max(0.01, deadline - time.monotonic()))


async def test_a_connection_silent_mid_frame_is_retired(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.send_raw(FALSE_LENGTH)
        peer.conn.sleep(10)  # connected, silent, reading nothing: no PING is answered

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        started = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            await pool.request("GET", srv.url + "/1", timeout=SHORT)
        assert time.monotonic() - started < SILENCE_BOUND
        assert pool.connections == []  # it failed: dropped, closed
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
    assert srv.connections_accepted == 2


async def test_a_silent_connection_fails_the_streams_on_it(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"part-", end=False)
        peer.wait_stream(3)
        peer.send_raw(FALSE_LENGTH)
        peer.conn.sleep(10)

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        async with pool.stream("GET", srv.url + "/1") as first:  # its read timeout: 5 s
            started = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout):
                await pool.request("GET", srv.url + "/2", timeout=SHORT)
            with pytest.raises(httpcore.RemoteProtocolError, match="went silent: no answer to a PING"):
                await first.aread()
            assert time.monotonic() - started < SILENCE_BOUND
        assert (await pool.request("GET", srv.url + "/3")).body == b"ok:/3"
    assert srv.connections_accepted == 2


async def test_a_slow_connection_that_answers_the_ping_is_kept(raw_server: RawServerFactory) -> None:
    pinged: list[bool] = []

    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)  # never answered; reading on answers the client's PING
        peer.wait_stream(3)
        pinged.append(any(isinstance(event, h2.events.PingReceived) for event in peer.events))
        peer.respond(3, body=b"three")
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with pool_for() as pool:
        with pytest.raises(httpcore.ReadTimeout):
            await pool.request("GET", srv.url + "/1", timeout=PATIENT)
        connection = only_connection(pool)
        assert connection.capacity() == 100
        assert (await pool.request("GET", srv.url + "/2")).body == b"three"
        assert only_connection(pool) is connection
    assert pinged == [True]
    assert srv.connections_accepted == 1


async def test_a_connection_sending_but_not_answering_the_ping_is_retired(
    raw_server: RawServerFactory,
) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one-", end=False)
        peer.wait_headers(3)
        read_raw_until_ping(peer)
        peer.send_body(1, b"two-", end=False)  # alive: bytes within the PING's span
        srv.wait_for_connections(2)
        peer.send_body(1, b"three")
        peer.conn.sleep(10)

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with pool_for() as pool:
        async with pool.stream("GET", srv.url + "/1") as first:
            connection = only_connection(pool)
            with pytest.raises(httpcore.ReadTimeout):
                await pool.request("GET", srv.url + "/2", timeout=PATIENT)
            assert connection.capacity() == 0  # until its PING is answered
            assert not connection.is_closed()
            assert (await pool.request("GET", srv.url + "/3")).body == b"ok:/3"  # elsewhere
            assert await first.aread() == b"one-two-three"
        assert connection.is_closed()  # idle, its PING unanswered: nobody would read it
    assert srv.connections_accepted == 2
