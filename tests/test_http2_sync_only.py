"""HTTP/2 multiplexing from many threads at once on the sync pool.

Sync only: the threads share one connection, its state lock and its reader hand-off,
which the generated tests (one thread each) never exercise.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from h2.errors import ErrorCodes

import httpcore
from tests.servers.app import pattern
from tests.servers.asgi_server import HypercornServer
from tests.servers.h2raw import H2Peer, h2_handler
from tests.servers.raw import RawServerFactory, per_connection

MiB = 1024 * 1024


def run_threads(count: int, work: Callable[[int], typing.Any]) -> list[typing.Any]:
    """Run ``work(i)`` in ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def start(index: int) -> typing.Any:
        barrier.wait(5)
        return work(index)

    with ThreadPoolExecutor(count) as executor:
        return list(executor.map(start, range(count)))


def test_threads_burst_opens_one_connection(
    h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    with httpcore.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        responses = run_threads(50, lambda i: pool.request("GET", h2_server.url + f"/echo_headers?i={i}"))
        assert [json.loads(r.body)["query_string"] for r in responses] == [f"i={i}" for i in range(50)]
        assert {r.http_version for r in responses} == {b"HTTP/2"}
        assert len(pool.connections) == 1


def test_threads_upload_and_download_over_tls(
    h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    # One TLS session read by one thread while others write: it must take turns, or
    # OpenSSL breaks the connection (it did in about one run in ten here).
    url = h2_server.url + "/echo_body"

    def work(index: int) -> None:
        for i in range(10):
            body = b"%d-%d-" % (index, i) * 5000
            assert pool.request("POST", url, body=body).body == body

    with httpcore.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        assert pool.request("GET", h2_server.url + "/").http_version == b"HTTP/2"
        run_threads(8, work)
        assert len(pool.connections) == 1


def test_threads_stream_and_upload_concurrently(h2c_server: HypercornServer) -> None:
    def chunks() -> Iterator[bytes]:
        for index in range(8):
            yield pattern(MiB, index * MiB)

    expected = hashlib.sha256(pattern(8 * MiB)).hexdigest()

    def work(index: int) -> None:
        if index % 2:
            r = pool.request("POST", h2c_server.url + "/upload", body=chunks())
            assert json.loads(r.body)["sha256"] == expected
        else:
            size = (index + 1) * 700_000
            with pool.stream("GET", h2c_server.url + f"/stream?size={size}&chunk=50000") as r:
                received = bytearray()
                for chunk in r.stream():
                    received += chunk
            assert received == pattern(size)

    with httpcore.ConnectionPool(http1=False, http2=True) as pool:
        pool.request("GET", h2c_server.url + "/")
        run_threads(12, work)
        assert len(pool.connections) == 1
        connection = typing.cast(typing.Any, pool.connections[0])._connection
        assert connection._streams == {}
        assert not connection._reading


def test_threads_with_timeouts_and_early_closes(h2c_server: HypercornServer) -> None:
    def work(index: int) -> str:
        kind = index % 3
        try:
            if kind == 0:
                return pool.request(
                    "GET", h2c_server.url + "/slow_headers?delay=1", timeout=0.1
                ).body.decode()
            if kind == 1:
                with pool.stream("GET", h2c_server.url + f"/stream?size={2 * MiB}") as r:
                    next(iter(r.stream()))
                return "closed early"
            return pool.request("GET", h2c_server.url + "/").body.decode()
        except httpcore.ReadTimeout:
            return "timeout"

    with httpcore.ConnectionPool(http1=False, http2=True) as pool:
        pool.request("GET", h2c_server.url + "/")
        results = run_threads(30, work)
        assert results == [["timeout", "closed early", "Hello, world!"][i % 3] for i in range(30)]
        connection = typing.cast(typing.Any, pool.connections[0])._connection
        assert connection._streams == {}
        assert not [s for s in connection._h2.streams.values() if s.open]
        assert pool.request("GET", h2c_server.url + "/").status_code == 200


def test_threads_see_a_connection_failure(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_requests(4)
        peer.respond(1, body=b"one")
        peer.goaway(last_stream_id=7, error_code=ErrorCodes.INTERNAL_ERROR)
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    with httpcore.ConnectionPool(http1=False, http2=True) as pool:

        def work(index: int) -> str:
            try:
                return pool.request("POST", srv.url + f"/{index}", body=b"x").body.decode()
            except httpcore.RemoteProtocolError:
                return "failed"

        results = sorted(run_threads(4, work))
        assert results in (["failed"] * 4, ["failed", "failed", "failed", "one"])


def test_threads_on_a_silent_connection_go_to_a_new_one(raw_server: RawServerFactory) -> None:
    """As its asyncio twin: four threads share a connection whose server goes silent
    mid-frame; the unanswered PING of the short read wait fails the connection, and the
    three other requests are sent again on a new one well within their read timeouts."""

    def stall(peer: H2Peer) -> None:
        peer.wait_requests(4)
        peer.send_raw(b"\x00\x00\x64\x00\x00\x00\x00\x00\x01" + b"ten bytes!")
        peer.conn.sleep(10)

    def serve(peer: H2Peer) -> None:
        peer.serve_forever()

    def work(index: int) -> typing.Any:
        try:
            if index == 0:
                return pool.request("GET", srv.url + "/short", timeout=0.6).body
            return pool.request("GET", srv.url + f"/{index}").body
        except httpcore.ReadTimeout as exc:
            return exc

    srv = raw_server(per_connection(h2_handler(stall), h2_handler(serve)))
    with httpcore.ConnectionPool(http1=False, http2=True, timeout=5.0) as pool:
        started = time.monotonic()
        results = run_threads(4, work)
        assert isinstance(results[0], httpcore.ReadTimeout)
        assert results[1:] == [b"ok:/1", b"ok:/2", b"ok:/3"]
        assert time.monotonic() - started < 2.0  # the read timeout (0.6 s) and a retry, not 5 s
    assert srv.connections_accepted >= 2
