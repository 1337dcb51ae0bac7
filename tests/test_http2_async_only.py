"""HTTP/2 multiplexing from many asyncio tasks at once: bursts, cancellation, timeouts of
one stream among many, GOAWAY and resets in the middle of a burst.

Async only: ``asyncio.gather`` and task cancellation have no place in the generated
sync suite (``tests/test_http2_sync_only.py`` does the same with threads).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
import typing
from collections.abc import AsyncIterator, Iterator

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

import httpcore
from tests.servers.app import pattern
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.h2raw import H2Peer, h2_handler
from tests.servers.raw import RawServerFactory, per_connection

MiB = 1024 * 1024


def h2_connection(pool: httpcore.AsyncConnectionPool) -> typing.Any:
    [connection] = pool.connections
    return typing.cast(typing.Any, connection)._connection


@pytest.fixture(scope="module")
def h2c_unlimited() -> Iterator[HypercornServer]:
    """hypercorn h2c without its limit of 1000 requests per connection."""
    srv = HypercornServer()
    srv.config.keep_alive_max_requests = 1_000_000
    with srv:
        yield srv


async def test_burst_opens_one_connection_over_tls(
    h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        responses = await asyncio.gather(*[pool.request("GET", h2_server.url + "/") for _ in range(100)])
        assert {r.body for r in responses} == {b"Hello, world!"}
        assert len({r.extensions["stream_id"] for r in responses}) == 100
        assert len(pool.connections) == 1
        connection = h2_connection(pool)
        assert connection._streams == {}


async def test_burst_with_prior_knowledge(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        responses = await asyncio.gather(
            *[pool.request("GET", h2c_server.url + f"/echo_headers?n={n}") for n in range(100)]
        )
        assert [json.loads(r.body)["query_string"] for r in responses] == [f"n={n}" for n in range(100)]
        assert len(pool.connections) == 1


async def test_burst_past_the_stream_limit(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        responses = await asyncio.gather(*[pool.request("GET", h2c_server.url + "/") for _ in range(250)])
        assert len(responses) == 250
        assert len(pool.connections) == 3  # hypercorn allows 100 streams per connection
        # A later burst fits the connections there are.
        await asyncio.gather(*[pool.request("GET", h2c_server.url + "/") for _ in range(250)])
        assert len(pool.connections) == 3


async def test_burst_to_http11_origin_in_http2_pool(
    tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        responses = await asyncio.gather(
            *[pool.request("GET", tls_server.url + "/slow_headers?delay=0.05") for _ in range(10)]
        )
        assert {r.http_version for r in responses} == {b"HTTP/1.1"}
        assert len(pool.connections) == 10
        # Known to be HTTP/1.1 now: nobody waits for a connection's protocol any more.
        responses = await asyncio.gather(
            *[pool.request("GET", tls_server.url + "/slow_headers?delay=0.05") for _ in range(20)]
        )
        assert len(pool.connections) == 20


async def test_burst_with_small_pool(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True, max_connections=1) as pool:
        responses = await asyncio.gather(*[pool.request("GET", h2c_server.url + "/") for _ in range(150)])
        assert len(responses) == 150
        assert len(pool.connections) == 1


async def test_first_connection_fails_then_waiters_try_their_own(raw_server: RawServerFactory) -> None:
    calls = 0

    def script(peer: H2Peer) -> None:
        peer.serve_forever()

    srv = raw_server(h2_handler(script))

    class Flaky(httpcore.AsyncioBackend):
        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: typing.Any = None,
        ) -> typing.Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(0.05)
                raise httpcore.ConnectError("first connect fails")
            return await super().connect_tcp(host, port, timeout, local_address, socket_options)

    async with httpcore.AsyncConnectionPool(http1=False, http2=True, network_backend=Flaky()) as pool:
        results = await asyncio.gather(
            *[pool.request("GET", srv.url + f"/{n}") for n in range(5)], return_exceptions=True
        )
        assert isinstance(results[0], httpcore.ConnectError)
        assert [typing.cast(httpcore.Response, r).body for r in results[1:]] == [
            f"ok:/{n}".encode() for n in range(1, 5)
        ]


async def test_interleaved_downloads_and_uploads(h2c_server: HypercornServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(16):
            yield pattern(MiB, index * MiB)
            await asyncio.sleep(0)

    async def download(size: int) -> None:
        r = await pool.request("GET", h2c_server.url + f"/stream?size={size}&chunk=100000")
        assert r.body == pattern(size)

    async def upload() -> None:
        r = await pool.request("POST", h2c_server.url + "/upload", body=chunks())
        digest = hashlib.sha256(b"".join(pattern(MiB, i * MiB) for i in range(16))).hexdigest()
        assert json.loads(r.body)["sha256"] == digest

    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await asyncio.gather(download(8 * MiB), upload(), download(3 * MiB), upload(), download(5 * MiB))
        assert len(pool.connections) == 1


async def test_one_stream_times_out_among_many(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await pool.request("GET", h2c_server.url + "/")  # connected, so all share it
        results = await asyncio.gather(
            pool.request("GET", h2c_server.url + "/slow_headers?delay=0.3"),
            pool.request("GET", h2c_server.url + "/slow_headers?delay=1", timeout=0.1),
            pool.request("GET", h2c_server.url + "/slow_body?delay=0.2"),
            pool.request("GET", h2c_server.url + "/slow_body?delay=1", timeout=0.1),
            return_exceptions=True,
        )
        assert typing.cast(httpcore.Response, results[0]).body == b"slow"
        assert isinstance(results[1], httpcore.ReadTimeout)
        assert typing.cast(httpcore.Response, results[2]).body == b"startend"
        assert isinstance(results[3], httpcore.ReadTimeout)
        assert len(pool.connections) == 1
        assert h2_connection(pool)._streams == {}


async def test_thousand_cancelled_requests(h2c_unlimited: HypercornServer) -> None:
    url = h2c_unlimited.url
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await pool.request("GET", url + "/")
        connection = h2_connection(pool)
        # 9 rounds: hypercorn keeps a reset stream in its priority tree until its handler
        # returns (a second later here), and refuses a 1001st at once on one connection.
        for round_ in range(9):
            path = "/slow_headers?delay=1" if round_ % 2 else "/slow_body?delay=1"
            tasks = [asyncio.create_task(pool.request("GET", url + path)) for _ in range(100)]
            await asyncio.sleep(0.03)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(result, asyncio.CancelledError) for result in results)
        assert connection._streams == {}
        assert not [s for s in connection._h2.streams.values() if s.open]
        assert len(connection._h2.streams) <= 2 * 100 + 64  # h2 drops closed streams now and then
        assert not connection._parked and not connection._reading
        responses = await asyncio.gather(
            *[pool.request("GET", url + "/fixed?size=300000", timeout=30.0) for _ in range(50)]
        )
        assert all(len(r.body) == 300000 for r in responses)
        assert h2_connection(pool) is connection


async def test_cancel_while_uploading_and_while_waiting_for_the_writer(h2c_server: HypercornServer) -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0)

    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await pool.request("GET", h2c_server.url + "/")
        tasks = [
            asyncio.create_task(pool.request("POST", h2c_server.url + "/upload", body=endless()))
            for _ in range(5)
        ]
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connection = h2_connection(pool)
        assert connection._streams == {}
        assert not connection._write_lock.locked()
        r = await pool.request("POST", h2c_server.url + "/echo_body", body=b"still fine")
        assert r.body == b"still fine"


async def test_goaway_in_the_middle_of_a_burst(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_requests(5)
        peer.goaway(last_stream_id=3)
        for stream_id in (1, 3):
            peer.respond(stream_id, body=b"first:" + peer.requests[stream_id].path)
        peer.wait_closed()

    def serve(peer: H2Peer) -> None:
        peer.serve_forever()

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await asyncio.sleep(0)
        responses = await asyncio.gather(
            *[pool.request("POST", srv.url + f"/{n}", body=b"x") for n in range(5)]
        )
        bodies = sorted(r.body for r in responses)
        assert len([b for b in bodies if b.startswith(b"first:")]) == 2
        assert len([b for b in bodies if b.startswith(b"ok:")]) == 3
    assert srv.connections_accepted == 2


async def test_reset_of_one_stream_in_a_burst(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_requests(3)
        peer.reset(3, ErrorCodes.INTERNAL_ERROR)
        peer.respond(1, body=b"one")
        peer.respond(5, body=b"five")
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        results = await asyncio.gather(
            *[pool.request("POST", srv.url + "/", body=b"x") for _ in range(3)], return_exceptions=True
        )
        outcomes = sorted(
            r.body.decode() if isinstance(r, httpcore.Response) else type(r).__name__ for r in results
        )
        assert outcomes == ["RemoteProtocolError", "five", "one"]


async def test_window_shared_by_streams(raw_server: RawServerFactory) -> None:
    """Tiny windows: every stream's upload waits for WINDOW_UPDATEs that other tasks read."""

    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"settings known")
        requests = peer.wait_requests(6, timeout=10)
        for request in requests[1:]:
            peer.respond(request.stream_id, body=b"%d" % len(request.body))
        peer.wait_closed()

    srv = raw_server(h2_handler(script, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2000}))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        assert (await pool.request("GET", srv.url + "/")).body == b"settings known"
        responses = await asyncio.gather(
            *[pool.request("POST", srv.url + "/", body=pattern(30_000 + n)) for n in range(5)]
        )
        assert sorted(r.body for r in responses) == sorted(b"%d" % (30_000 + n) for n in range(5))


async def test_connection_failure_fails_every_stream(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_requests(3)
        peer.respond(1, body=b"partial", end=False)
        peer.conn.reset()

    srv = raw_server(h2_handler(script))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        results = await asyncio.gather(
            *[pool.request("POST", srv.url + "/", body=b"x") for _ in range(3)], return_exceptions=True
        )
        assert all(isinstance(r, httpcore.RemoteProtocolError) for r in results)
        assert pool.connections == []


async def test_reader_times_out_while_reading_for_others(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        await pool.request("GET", h2c_server.url + "/")
        slow = asyncio.create_task(pool.request("GET", h2c_server.url + "/slow_headers?delay=2", timeout=0.2))
        await asyncio.sleep(0.01)  # it is the reader now
        size = 48 * MiB
        big = await pool.request("GET", h2c_server.url + f"/stream?size={size}&chunk=65536")
        assert len(big.body) == size
        with pytest.raises(httpcore.ReadTimeout):
            await slow
        assert h2_connection(pool)._streams == {}


async def test_free_streams_serve_their_origin_behind_another_origins_head(
    raw_server: RawServerFactory,
) -> None:
    """One connection allowed; the waiter at the head wants another origin. An HTTP/2
    connection with a free stream still serves the waiters of its own origin."""
    delays = {b"/a1": 0.15, b"/a2": 0.4}

    def script(peer: H2Peer) -> None:
        started: dict[int, float] = {}
        loop_until = time.monotonic() + 5
        while not peer.closed and time.monotonic() < loop_until:
            now = time.monotonic()
            for request in peer.complete():
                started.setdefault(request.stream_id, now)
                due = started[request.stream_id] + delays.get(request.path, 0)
                if request.stream_id not in peer.answered and now >= due:
                    peer.respond(request.stream_id, body=b"ok:" + request.path)
            try:
                peer.receive(0.01)
            except TimeoutError:
                pass

    srv = raw_server(h2_handler(script, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 2}))
    other = srv.url.replace("127.0.0.1", "localhost")
    async with httpcore.AsyncConnectionPool(http1=False, http2=True, max_connections=1) as pool:
        assert (await pool.request("GET", srv.url + "/warm")).body == b"ok:/warm"
        a1 = asyncio.create_task(pool.request("GET", srv.url + "/a1"))
        a2 = asyncio.create_task(pool.request("GET", srv.url + "/a2"))
        await asyncio.sleep(0.05)
        b = asyncio.create_task(pool.request("GET", other + "/b"))  # needs the only slot
        await asyncio.sleep(0.01)
        a3 = asyncio.create_task(pool.request("GET", srv.url + "/a3"))  # behind b
        done = [await task for task in (a1, a3)]
        assert [r.body for r in done] == [b"ok:/a1", b"ok:/a3"]
        assert not b.done()  # a3 went first: it needed no new connection
        assert (await a2).body == b"ok:/a2"
        assert (await b).body == b"ok:/b"


async def test_http1_origins_remembered_within_a_bound(
    server: UvicornServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httpcore._async import connection_pool

    monkeypatch.setattr(connection_pool, "_HTTP1_ORIGINS_KEPT", 1)
    async with httpcore.AsyncConnectionPool(http2=True) as pool:
        await pool.request("GET", server.url + "/")
        await pool.request("GET", server.url.replace("127.0.0.1", "localhost") + "/")
        assert len(pool._http1_origins) == 1


async def test_waiter_cancelled_after_the_pool_closed(h2c_server: HypercornServer) -> None:
    pool = httpcore.AsyncConnectionPool(http1=False, http2=True, max_connections=1)
    first = await pool.request("GET", h2c_server.url + "/", stream=True)
    other = h2c_server.url.replace("127.0.0.1", "localhost")
    waiting = asyncio.create_task(pool.request("GET", other + "/"))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(pool.aclose())
    await asyncio.sleep(0)  # the close has woken the waiter with PoolClosed...
    waiting.cancel()  # ...but it is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await closing
    await first.aclose()


async def test_reset_seen_by_another_reader_before_the_body_ends(raw_server: RawServerFactory) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(0.3)  # meanwhile the other request's task reads the reset

    def script(peer: H2Peer) -> None:
        peer.wait(lambda: 3 in peer.requests and bool(peer.requests[3].body))
        peer.reset(3, ErrorCodes.INTERNAL_ERROR)
        peer.conn.sleep(0.4)
        peer.respond(1, body=b"slow")
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        slow = asyncio.create_task(pool.request("GET", srv.url + "/slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(httpcore.RemoteProtocolError, match="INTERNAL_ERROR"):
            await pool.request("POST", srv.url + "/", body=body())
        assert (await slow).body == b"slow"


async def test_cancelled_while_the_transport_is_full(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.h2.increment_flow_control_window(1 << 26)
        peer.flush()
        peer.wait_headers(1)
        peer.conn.sleep(0.6)  # reads nothing: the client's socket buffers fill up
        peer.wait_closed()

    srv = raw_server(h2_handler(script, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1 << 26}))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        upload = asyncio.create_task(pool.request("POST", srv.url + "/", body=b"x" * (48 * MiB)))
        await asyncio.sleep(0.3)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        connection = h2_connection(pool)
        assert not connection._write_lock.locked()
        assert connection._streams == {}


async def test_complete_answer_seen_by_another_reader_before_the_body_ends(
    raw_server: RawServerFactory,
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"x"
        await asyncio.sleep(0.3)  # meanwhile the other request's task reads answer and reset

    def script(peer: H2Peer) -> None:
        peer.wait(lambda: 3 in peer.requests and bool(peer.requests[3].body))
        peer.respond(3, 200, body=b"enough")
        peer.reset(3, ErrorCodes.NO_ERROR)
        peer.conn.sleep(0.4)
        peer.respond(1, body=b"slow")
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        slow = asyncio.create_task(pool.request("GET", srv.url + "/slow"))
        await asyncio.sleep(0.05)
        assert (await pool.request("POST", srv.url + "/", body=body())).body == b"enough"
        assert (await slow).body == b"slow"


async def test_requests_on_a_silent_connection_go_to_a_new_one(raw_server: RawServerFactory) -> None:
    """Four GETs share a connection whose server goes silent in the middle of a frame
    (its header promised more bytes than came). The one with a short read timeout gets
    its ReadTimeout; its PING, sent before that, goes unanswered, so the connection
    fails, and the three others, never answered, are sent again on a new connection
    long before their own read timeouts (5 s) would have ended them."""

    def stall(peer: H2Peer) -> None:
        peer.wait_requests(4)
        peer.send_raw(b"\x00\x00\x64\x00\x00\x00\x00\x00\x01" + b"ten bytes!")
        peer.conn.sleep(10)

    def serve(peer: H2Peer) -> None:
        peer.serve_forever()

    srv = raw_server(per_connection(h2_handler(stall), h2_handler(serve)))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=5.0) as pool:
        started = time.monotonic()
        results = await asyncio.gather(
            pool.request("GET", srv.url + "/short", timeout=0.6),
            *[pool.request("GET", srv.url + f"/{index}") for index in range(3)],
            return_exceptions=True,
        )
        assert isinstance(results[0], httpcore.ReadTimeout)
        assert [typing.cast(httpcore.Response, r).body for r in results[1:]] == [b"ok:/0", b"ok:/1", b"ok:/2"]
        assert time.monotonic() - started < 2.0  # the read timeout (0.6 s) and a retry, not 5 s
    assert srv.connections_accepted >= 2
