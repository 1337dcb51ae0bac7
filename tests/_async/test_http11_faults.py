"""HTTP/1.1 fault injection: bad input gets a clear httpcore exception, never a bare
h11/ssl/OSError, never a hang, a leaked connection or a corrupted pool.

Every test drives one shared pool against the raw server, which answers
``GET /good/<token>`` correctly (body ``good:<token>``) and hands every other request
to the fault under test. After the fault, ``check_healthy`` asserts that the pool holds
no broken connection and that a good request on the same origin still gets its own
response.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import threading
import time
import typing
from collections.abc import AsyncIterator

import pytest

import httpcore
from tests.concurrency import async_sleep
from tests.servers.raw import (
    Fault,
    Handler,
    RawConnection,
    RawServer,
    RawServerFactory,
    chunked,
    good_or,
    ok,
    per_connection,
    response,
)

TIMEOUT = httpcore.Timeout(5.0)
SHORT = httpcore.Timeout(5.0, read=0.2)
_tokens = itertools.count()


def send_and_close(data: bytes) -> Fault:
    """Answer with ``data``, then close (a FIN)."""

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(data)
        conn.close()
        return False

    return fault


def send_and_keep(data: bytes) -> Fault:
    """Answer with ``data`` and keep serving the connection."""

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(data)
        return True

    return fault


def send_and_reset(data: bytes, delay: float = 0.05) -> Fault:
    """Answer with ``data``, then reset the connection (a TCP RST)."""

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(data)
        conn.sleep(delay)
        conn.reset()
        return False

    return fault


class Recorder:
    """A handler that only records what the client sends, until it hangs up."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.done = threading.Event()

    def __call__(self, conn: RawConnection) -> None:
        try:
            while data := conn.recv():
                self.received.append(data)
        finally:
            self.done.set()


def open_fds() -> set[tuple[int, str]]:
    """This process's file descriptors and what each refers to (``socket:[inode]``, so
    a number reused for another socket counts as new)."""
    targets = {int(name): _fd_target(name) for name in os.listdir("/proc/self/fd")}
    return {(fd, target) for fd, target in targets.items() if target is not None}


def _fd_target(name: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{name}")
    except OSError:  # the descriptor that did the listing, closed by now
        return None


async def attempt(pool: httpcore.AsyncConnectionPool, url: str) -> httpcore.Response | httpcore.HTTPCoreError:
    """The response, or the httpcore error; any other exception fails the test."""
    try:
        return await pool.request("GET", url)
    except httpcore.HTTPCoreError as exc:
        return exc


async def check_healthy(
    pool: httpcore.AsyncConnectionPool, server: RawServer, max_connections: int = 1
) -> None:
    """No connection the pool holds is closed, and a good request gets its own response."""
    connections = pool.connections
    assert len(connections) <= max_connections, connections
    for connection in connections:
        assert not connection.is_closed(), connection
    token = str(next(_tokens)).encode()
    r = await pool.request("GET", f"{server.url}/good/{token.decode()}")
    assert (r.status_code, r.body) == (200, b"good:" + token)
    connections = pool.connections
    assert len(connections) <= max_connections, connections
    for connection in connections:
        assert not connection.is_closed(), connection


# -- malformed response heads -------------------------------------------------------

MALFORMED_HEADS = {
    "garbage": b"garbage\r\n\r\n",
    "binary": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "http2-status-line": b"HTTP/2 200 OK\r\ncontent-length: 2\r\n\r\nhi",
    "http-1.x-lowercase": b"http/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
    "four-digit-status": b"HTTP/1.1 2000 OK\r\ncontent-length: 2\r\n\r\nhi",
    "status-below-100": b"HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nhi",
    "non-numeric-status": b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\nhi",
    "space-in-header-name": b"HTTP/1.1 200 OK\r\nBad Name: x\r\ncontent-length: 2\r\n\r\nhi",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nX-A : x\r\ncontent-length: 2\r\n\r\nhi",
    "no-colon": b"HTTP/1.1 200 OK\r\nX-A\r\ncontent-length: 2\r\n\r\nhi",
    "empty-header-name": b"HTTP/1.1 200 OK\r\n: x\r\ncontent-length: 2\r\n\r\nhi",
    "nul-in-header-value": b"HTTP/1.1 200 OK\r\nX-A: o\x00ne\r\ncontent-length: 2\r\n\r\nhi",
    "nul-in-header-name": b"HTTP/1.1 200 OK\r\nX\x00A: one\r\ncontent-length: 2\r\n\r\nhi",
    "bare-cr-in-header-value": b"HTTP/1.1 200 OK\r\nX-A: o\rne\r\ncontent-length: 2\r\n\r\nhi",
    "obs-fold-first-line": b"HTTP/1.1 200 OK\r\n folded: x\r\ncontent-length: 2\r\n\r\nhi",
    "header-block-over-100KiB": b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * (101 * 1024) + b"\r\n\r\n",
    "many-headers-over-100KiB": b"HTTP/1.1 200 OK\r\n" + b"X-H: 0123456789\r\n" * 7000 + b"\r\n",
    "101-without-upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\n\r\nhi",
}


@pytest.mark.parametrize("keep_open", [False, True], ids=["then-close", "kept-open"])
@pytest.mark.parametrize("data", list(MALFORMED_HEADS.values()), ids=list(MALFORMED_HEADS))
async def test_malformed_response_head(raw_server: RawServerFactory, data: bytes, keep_open: bool) -> None:
    # Kept open, the error must come from the parser at once, not from the EOF or a timeout.
    fault = send_and_keep(data) if keep_open else send_and_close(data)
    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        started = time.monotonic()
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/fault")
        assert time.monotonic() - started < 2.0
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


@pytest.mark.parametrize(
    "data",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"hello", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n", b""],
    ids=["ssh-banner", "http-0.9-body", "unterminated-head", "nothing"],
)
async def test_non_http_answer_then_close(raw_server: RawServerFactory, data: bytes) -> None:
    srv = raw_server(good_or(send_and_close(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="disconnected"):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


async def test_missing_reason_phrase_is_fine(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(send_and_keep(b"HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nhi")))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert (r.status_code, r.reason_phrase, r.body) == (200, b"", b"hi")
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 1  # kept alive


async def test_obs_fold_is_unfolded(raw_server: RawServerFactory) -> None:
    # RFC 9112 5.2: a user agent replaces each obs-fold with SP before using the value.
    data = b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\tthree\r\ncontent-length: 2\r\n\r\nhi"
    srv = raw_server(good_or(send_and_keep(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.headers[0] == (b"X-A", b"one two three")
        assert r.body == b"hi"
        await check_healthy(pool, srv)


async def test_lf_only_line_endings_are_accepted(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(send_and_keep(b"HTTP/1.1 200 OK\ncontent-length: 2\n\nhi")))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"hi"
        await check_healthy(pool, srv)


# -- body framing ---------------------------------------------------------------------

BAD_LENGTHS = {
    "conflicting": [b"2", b"3"],
    "conflicting-list": [b"2, 3"],
    "negative": [b"-2"],
    "plus-sign": [b"+2"],
    "hex": [b"0x2"],
    "empty": [b""],
    "space-inside": [b"2 2"],
    "huge": [b"9" * 40],
}


@pytest.mark.parametrize("values", list(BAD_LENGTHS.values()), ids=list(BAD_LENGTHS))
async def test_bad_content_length(raw_server: RawServerFactory, values: list[bytes]) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"Content-Length: " + v + b"\r\n" for v in values)
    srv = raw_server(good_or(send_and_keep(head + b"\r\nhi")))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


async def test_repeated_identical_content_length_is_fine(raw_server: RawServerFactory) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi"
    srv = raw_server(good_or(send_and_keep(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"hi"
        await check_healthy(pool, srv)


async def test_content_length_with_transfer_encoding(raw_server: RawServerFactory) -> None:
    # RFC 9112 6.3: Transfer-Encoding overrides Content-Length, but such a message may be a
    # response-splitting attempt: either refuse it, or frame it by the chunks and never
    # reuse the connection (bytes the other framing would read must not become a response).
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
        b"chunked body"
    )
    srv = raw_server(good_or(send_and_keep(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        result = await attempt(pool, srv.url + "/fault")
        if isinstance(result, httpcore.Response):
            assert result.body == b"chunked body"
        else:
            assert isinstance(result, httpcore.RemoteProtocolError)
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


@pytest.mark.parametrize(
    "value",
    [b"gzip, chunked", b"chunked, gzip", b"identity", b"gzip", b"chunked\r\nTransfer-Encoding: chunked"],
    ids=["gzip-chunked", "chunked-gzip", "identity", "gzip", "repeated"],
)
async def test_unsupported_transfer_encoding(raw_server: RawServerFactory, value: bytes) -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value + b"\r\n\r\n" + chunked(b"hi")
    srv = raw_server(good_or(send_and_keep(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
BAD_CHUNKS = {
    "non-hex-size": b"zz\r\nhi\r\n0\r\n\r\n",
    "negative-size": b"-2\r\nhi\r\n0\r\n\r\n",
    "huge-size": b"f" * 30 + b"\r\nhi\r\n0\r\n\r\n",
    "empty-size": b"\r\nhi\r\n0\r\n\r\n",
    "size-larger-than-data": b"5\r\nhi\r\n0\r\n\r\n",
    "missing-crlf-after-data": b"2\r\nhiXX0\r\n\r\n",
    "bad-trailer": b"2\r\nhi\r\n0\r\nBad Trailer\r\n\r\n",
    # Never buffered whole: h11 bounds an incomplete line to 100 KiB (one that arrives
    # complete within a read or two may be a little longer, and is skipped).
    "huge-chunk-extension": b"2;" + b"x" * (1024 * 1024) + b"\r\nhi\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("body", list(BAD_CHUNKS.values()), ids=list(BAD_CHUNKS))
async def test_bad_chunked_body(raw_server: RawServerFactory, body: bytes) -> None:
    srv = raw_server(good_or(send_and_keep(CHUNKED_HEAD + body)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        started = time.monotonic()
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/fault")
        assert time.monotonic() - started < 2.0
        await check_healthy(pool, srv)


@pytest.mark.parametrize(
    "body",
    [b"5\r\nhel", b"5\r\nhello", b"5\r\nhello\r\n", b"2\r\nhi\r\n0\r\n", b"2\r\nhi\r\n0\r\nX-T: 1\r\n"],
    ids=["mid-chunk", "before-crlf", "no-last-chunk", "no-final-crlf", "mid-trailers"],
)
async def test_truncated_chunked_body(raw_server: RawServerFactory, body: bytes) -> None:
    srv = raw_server(good_or(send_and_close(CHUNKED_HEAD + body)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


async def test_body_shorter_than_content_length_then_close(raw_server: RawServerFactory) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"
    srv = raw_server(good_or(send_and_close(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="received 5 bytes, expected 10"):
            await pool.request("GET", srv.url + "/fault")
        async with pool.stream("GET", srv.url + "/fault") as r:
            assert r.status_code == 200
            received = b""
            with pytest.raises(httpcore.RemoteProtocolError):
                async for chunk in r.stream():
                    received += chunk
            assert received == b"hello"
        await check_healthy(pool, srv)


# -- truncation at every offset ------------------------------------------------------

TRUNCATED = {
    "content-length": response(200, b"hello", [(b"X-A", b"1")]),
    "chunked": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    + response(
        200,
        chunked(b"hel", b"lo", trailers=[(b"X-T", b"1")]),
        [(b"Transfer-Encoding", b"chunked")],
        content_length=False,
    ),
}
TRUNCATION_CASES = [
    pytest.param(shape, offset, how, id=f"{shape}-{how}-{offset}")
    for shape, data in TRUNCATED.items()
    for how in ("close", "reset")
    for offset in range(len(data) + 1)
]


@pytest.mark.parametrize(("shape", "offset", "how"), TRUNCATION_CASES)
async def test_truncated_response(raw_server: RawServerFactory, shape: str, offset: int, how: str) -> None:
    data = TRUNCATED[shape]
    fault = send_and_close(data[:offset]) if how == "close" else send_and_reset(data[:offset], 0.01)
    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        result = await attempt(pool, srv.url + "/fault")
        if offset == len(data) and isinstance(result, httpcore.Response):
            assert (result.status_code, result.body) == (200, b"hello")
        elif how == "close":
            assert isinstance(result, httpcore.RemoteProtocolError), result
        else:
            assert isinstance(result, httpcore.RemoteProtocolError | httpcore.ReadError), result
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


# -- connection lifetime and reuse ---------------------------------------------------


@pytest.mark.parametrize("connection_header", [b"close", None], ids=["connection-close", "no-header"])
async def test_close_delimited_body_is_read_fully(
    raw_server: RawServerFactory, connection_header: bytes | None
) -> None:
    headers = [] if connection_header is None else [(b"Connection", connection_header)]
    head = response(200, headers=headers, content_length=False)

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(head + b"part one, ")
        conn.sleep(0.05)
        conn.send(b"part two")
        conn.close()
        return False

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"part one, part two"
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (b"HTTP/1.0 200 OK\r\n\r\nclose-delimited", b"close-delimited"),
    ],
    ids=["content-length", "keep-alive-header", "close-delimited"],
)
async def test_http10_response(raw_server: RawServerFactory, data: bytes, body: bytes) -> None:
    srv = raw_server(good_or(send_and_close(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert (r.status_code, r.http_version, r.body) == (200, b"HTTP/1.0", body)
        assert pool.connections == []  # HTTP/1.0: never kept alive
        await check_healthy(pool, srv)


@pytest.mark.parametrize(
    "extra",
    [ok(b"smuggled"), b"junk", b"\r\n", response(204)],
    ids=["second-response", "junk", "crlf", "204"],
)
async def test_extra_bytes_after_response(raw_server: RawServerFactory, extra: bytes) -> None:
    srv = raw_server(good_or(send_and_keep(ok(b"first") + extra)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        assert pool.connections == []  # closed at once, never reused
        await check_healthy(pool, srv)
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 3


@pytest.mark.parametrize("close", [False, True], ids=["kept-open", "then-close"])
async def test_unsolicited_bytes_while_idle(raw_server: RawServerFactory, close: bool) -> None:
    # nginx-style: a 408 sent on an idle keep-alive connection must not become the
    # response to the next request.
    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(ok(b"first"))
        conn.sleep(0.05)
        conn.send(response(408, b"idle", [(b"Connection", b"close")]))
        if close:
            conn.close()
            return False
        return True

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        await async_sleep(0.3)
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


async def test_server_closes_right_after_response(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(send_and_close(ok(b"first"))))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        for _ in range(3):
            r = await pool.request("GET", srv.url + "/fault")
            assert r.body == b"first"
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 4


async def test_connection_close_header_is_honoured(raw_server: RawServerFactory) -> None:
    # The server says close but leaves the socket open: the connection is not reused.
    srv = raw_server(good_or(send_and_keep(ok(b"first", [(b"Connection", b"close")]))))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


async def test_server_closes_idle_connection(raw_server: RawServerFactory) -> None:
    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(ok(b"first"))
        if conn.index > 0:
            return True
        conn.sleep(0.05)
        conn.close()
        return False

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        await async_sleep(0.3)
        # A POST is never retried: it succeeds only if the closed connection was noticed.
        r = await pool.request("POST", srv.url + "/fault", body=b"payload")
        assert r.body == b"first"
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


def stale_after_one() -> Fault:
    """Answer the first request; read the second and close without answering, as a
    server does when its keep-alive timeout races the client's next request."""

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(ok(b"first"))
        if conn.read_request() is not None:
            conn.close()
        return False

    return fault


async def test_stale_connection_post_is_not_retried(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(stale_after_one()))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        with pytest.raises(httpcore.RemoteProtocolError, match="not retried because POST is not idempotent"):
            await pool.request("POST", srv.url + "/fault", body=b"payload")
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2
    assert b"payload" in srv.requests[1]


async def test_stale_connection_streamed_put_is_not_retried(raw_server: RawServerFactory) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"pay"
        yield b"load"

    srv = raw_server(good_or(stale_after_one()))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        await pool.request("GET", srv.url + "/fault")
        with pytest.raises(httpcore.RemoteProtocolError, match="not retried because its body is a stream"):
            await pool.request("PUT", srv.url + "/fault", body=body())
        await check_healthy(pool, srv)


async def test_stale_connection_get_is_retried(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(stale_after_one()))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"first"  # the retry, on a new connection
        assert srv.connections_accepted == 2
        await check_healthy(pool, srv)


async def test_abandoned_streaming_response_is_not_reused(raw_server: RawServerFactory) -> None:
    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        conn.sleep(0.1)
        conn.send(b"world")  # the rest arrives after the client gave up
        return True

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        async with pool.stream("GET", srv.url + "/fault") as r:
            async for chunk in r.stream():
                assert chunk == b"hello"
                break
        assert pool.connections == []
        await async_sleep(0.2)
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


# -- 1xx and bodiless responses -------------------------------------------------------


async def test_informational_responses_are_skipped(raw_server: RawServerFactory) -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n" + ok(b"final", [(b"X-Final", b"1")])
    )
    srv = raw_server(good_or(send_and_keep(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        for _ in range(2):
            r = await pool.request(
                "POST", srv.url + "/fault", headers=[("Expect", "100-continue")], body=b"x"
            )
            assert (r.status_code, r.body) == (200, b"final")
            assert (b"X-Final", b"1") in r.headers
            assert all(name != b"Link" for name, _ in r.headers)
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 1


async def test_endless_informational_responses_are_refused(raw_server: RawServerFactory) -> None:
    def fault(conn: RawConnection, request: bytes) -> bool:
        for _ in range(200):  # would go on for ever, each well within the read timeout
            conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
            conn.sleep(0.001)
        conn.send(ok(b"too late"))
        return True

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="informational"):
            await pool.request("GET", srv.url + "/fault")
        assert pool.connections == []
        await check_healthy(pool, srv)


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)], ids=["HEAD", "204", "304"]
)
async def test_bodiless_response_with_content_length(
    raw_server: RawServerFactory, method: str, status: int
) -> None:
    data = response(status, headers=[(b"Content-Length", b"10")], content_length=False)
    srv = raw_server(good_or(send_and_keep(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        for _ in range(2):
            r = await pool.request(method, srv.url + "/fault")
            assert (r.status_code, r.body) == (status, b"")
            assert len(pool.connections) == 1
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 1  # the next request's response was not eaten as a body


# -- uploads ------------------------------------------------------------------------


def answer_early(status: int = 413) -> Handler:
    """Read only the request head, answer at once and drop the connection while the
    client is still uploading (unread input turns the close into a reset)."""

    def handler(conn: RawConnection) -> None:
        if conn.read_head() is not None:
            conn.send(response(status, b"too big", [(b"Connection", b"close")]))
            conn.shutdown_write()
            conn.sleep(0.2)
            conn.reset()

    return per_connection(handler, good_or())


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "stream"])
async def test_response_before_upload_finished(raw_server: RawServerFactory, streamed: bool) -> None:
    size = 32 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        piece = b"x" * 65536
        for _ in range(size // len(piece)):
            yield piece

    srv = raw_server(answer_early())
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        started = time.monotonic()
        upload = body()
        r = await pool.request("POST", srv.url + "/upload", body=upload if streamed else b"x" * size)
        await typing.cast(typing.Any, upload).aclose()  # the caller's generator: the caller closes it
        assert (r.status_code, r.body) == (413, b"too big")
        assert time.monotonic() - started < 3.0
        assert pool.connections == []
        await check_healthy(pool, srv)


async def test_write_timeout_releases_the_socket(raw_server: RawServerFactory) -> None:
    server_fds: set[int] = set()

    def never_reads(conn: RawConnection) -> None:
        server_fds.add(conn.sock.fileno())
        conn.read_head()
        conn.sleep(10)

    srv = raw_server(per_connection(good_or(), never_reads, good_or()))
    # Once the server accepted a connection its own descriptors (selector, ...) exist.
    socket.create_connection(("127.0.0.1", srv.port)).close()
    assert srv.wait_for_connections(1)
    before = open_fds()
    pool = httpcore.AsyncConnectionPool(timeout=httpcore.Timeout(5.0, write=0.2))
    with pytest.raises(httpcore.WriteTimeout, match=r"\w"):
        await pool.request("POST", srv.url + "/upload", body=b"x" * (32 * 1024 * 1024))
    assert pool.connections == []
    await check_healthy(pool, srv)
    await pool.aclose()
    await async_sleep(0.05)
    leaked = {(fd, target) for fd, target in open_fds() - before if fd not in server_fds}
    assert leaked == set()


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([("Content-Length", "10")], b"short"),
        ([("Content-Length", "2")], b"too long"),
    ],
    ids=["body-shorter-than-content-length", "body-longer-than-content-length"],
)
async def test_request_body_length_mismatch_sends_nothing(
    raw_server: RawServerFactory, headers: list[tuple[str, str]], body: bytes
) -> None:
    record = Recorder()
    srv = raw_server(per_connection(record, good_or()))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.request("POST", srv.url + "/", headers=headers, body=body)
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert record.done.wait(5.0)
    assert record.received == []


# -- resets, drips and timeouts --------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"HTTP/1.1 200 OK\r\nContent-", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf"],
    ids=["before-response", "mid-head", "mid-body"],
)
async def test_connection_reset(raw_server: RawServerFactory, data: bytes) -> None:
    srv = raw_server(good_or(send_and_reset(data)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises((httpcore.ReadError, httpcore.RemoteProtocolError)):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


async def test_connection_reset_while_streaming(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(send_and_reset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf", 0.1)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        async with pool.stream("GET", srv.url + "/fault") as r:
            received = b""
            with pytest.raises((httpcore.ReadError, httpcore.RemoteProtocolError)):
                async for chunk in r.stream():
                    received += chunk
            assert received == b"half"
        await check_healthy(pool, srv)


def drip(data: bytes, delay: float) -> Fault:
    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send_slowly(data, 1, delay)
        return True

    return fault


async def test_slow_drip_within_read_timeout(raw_server: RawServerFactory) -> None:
    # Byte by byte, 10 ms apart: longer in total than the read timeout, which bounds
    # each wait for data, not the whole response.
    data = ok(b"dripped", [(b"X-A", b"1")])
    srv = raw_server(good_or(drip(data, 0.01)))
    async with httpcore.AsyncConnectionPool(timeout=httpcore.Timeout(5.0, read=0.25)) as pool:
        started = time.monotonic()
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == b"dripped"
        assert time.monotonic() - started > 0.25
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 1


STALLED = ok(b"too late", [(b"X-A", b"1")])


@pytest.mark.parametrize(
    "stall_at", [0, 1, 20, len(STALLED) - 4], ids=["before-head", "in-status", "in-headers", "in-body"]
)
async def test_stall_beyond_read_timeout(raw_server: RawServerFactory, stall_at: int) -> None:
    data = STALLED

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send_slowly(data[:stall_at], 1, 0.001)
        conn.sleep(1.0)  # the rest arrives after the client gave up: it must not be reused
        conn.send(data[stall_at:])
        return True

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        started = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout, match=r"\w"):
            await pool.request("GET", srv.url + "/fault", timeout=SHORT)
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 0.9
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 2


async def test_server_never_answers(raw_server: RawServerFactory) -> None:
    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.sleep(30)
        return False

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=SHORT) as pool:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout):
                await pool.request("GET", srv.url + "/fault")
            assert 0.2 <= time.monotonic() - started < 1.0
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 3


# -- request injection ----------------------------------------------------------------

INJECTIONS = {
    "crlf-in-header-value": ("GET", "/", [("X-A", "a\r\nX-Injected: 1")]),
    "crlf-in-header-value-bytes": ("GET", "/", [(b"X-A", b"a\r\nX-Injected: 1")]),
    "lf-in-header-value": ("GET", "/", [("X-A", "a\nX-Injected: 1")]),
    "cr-in-header-value": ("GET", "/", [("X-A", "a\rb")]),
    "nul-in-header-value": ("GET", "/", [("X-A", "a\x00b")]),
    "crlf-in-header-name": ("GET", "/", [("X-Injected: 1\r\nX-A", "a")]),
    "colon-in-header-name": ("GET", "/", [("X-A:", "a")]),
    "space-in-header-name": ("GET", "/", [("X A", "a")]),
    "nul-in-header-name": ("GET", "/", [("X\x00A", "a")]),
    "empty-header-name": ("GET", "/", [("", "a")]),
    "non-latin-1-header-value": ("GET", "/", [("X-A", "\u2028")]),
    "crlf-in-method": ("GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "/", []),
    "space-in-method": ("GE T", "/", []),
    "nul-in-method": ("GET\x00", "/", []),
    "empty-method": ("", "/", []),
    "crlf-in-url": ("GET", "/a\r\nX-Injected: 1", []),
    "lf-in-url": ("GET", "/a\nb", []),
    "space-in-url": ("GET", "/a b HTTP/1.1", []),
    "nul-in-url": ("GET", "/a\x00b", []),
    "non-ascii-path": ("GET", "/caf\u00e9", []),
}


@pytest.mark.parametrize(("method", "path", "headers"), list(INJECTIONS.values()), ids=list(INJECTIONS))
async def test_request_injection_is_refused(
    raw_server: RawServerFactory, method: str, path: str, headers: list[tuple[str | bytes, str | bytes]]
) -> None:
    srv = raw_server(good_or())
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.request(method, srv.url + path, headers=headers)
        assert pool.connections == []
        assert (srv.connections_accepted, srv.requests) == (0, [])
        await check_healthy(pool, srv)


@pytest.mark.parametrize(
    ("host", "target"),
    [("127.0.0.1", "/a\r\nX-Injected: 1"), ("127.0.0.1\r\nX-Injected: 1", "/"), ("127.0.0.1", "/a b")],
    ids=["crlf-in-target", "crlf-in-host", "space-in-target"],
)
async def test_url_injection_is_refused(raw_server: RawServerFactory, host: str, target: str) -> None:
    srv = raw_server(good_or())
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.request("GET", httpcore.URL(scheme="http", host=host, port=srv.port, target=target))
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.request("GET", (f"http://{host}:{srv.port}{target}").encode("latin-1"))
        assert (srv.connections_accepted, srv.requests) == (0, [])
        await check_healthy(pool, srv)


@pytest.mark.parametrize(
    "header",
    [(b"X-A", b"a\r\nX-Injected: 1"), (b"X-A\r\nX-Injected", b"1"), (b"X-A", b" padded ")],
    ids=["crlf-in-value", "crlf-in-name", "padded-value"],
)
async def test_headers_changed_after_validation_are_refused(
    raw_server: RawServerFactory, header: tuple[bytes, bytes]
) -> None:
    # A Request whose headers were edited after construction is checked again on the
    # wire path: the connection may open, but no byte of the request leaves.
    record = Recorder()
    srv = raw_server(per_connection(record, good_or()))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        request = httpcore.Request("GET", srv.url + "/")
        request.headers.append(header)
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.handle_async_request(request)
        assert pool.connections == []
        await check_healthy(pool, srv)
    assert record.done.wait(5.0)
    assert record.received == []


async def test_request_heads_are_built_once_and_still_checked(raw_server: RawServerFactory) -> None:
    """h11's event for a request head is cached by its exact bytes: the same head again
    is a cache hit, a head edited into something invalid is refused, and a header pair
    made unhashable after construction is still sent."""
    from httpcore._h11_replay import request_head as _request_event

    srv = raw_server(good_or())
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        url = f"{srv.url}/good/cached"
        await pool.request("GET", url, headers=[("X-Same", "1")])
        hits = _request_event.cache_info().hits
        r = await pool.request("GET", url, headers=[("X-Same", "1")])
        assert r.body == b"good:cached"
        assert _request_event.cache_info().hits == hits + 1
        request = httpcore.Request("GET", url, headers=[("X-Same", "1")])
        request.headers.append((b"X-Same", b"1\r\nX-Injected: 1"))
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.handle_async_request(request)
        request = httpcore.Request("GET", url)
        request.headers.append([b"X-List", b"pair"])  # type: ignore[arg-type]
        response = await pool.handle_async_request(request)
        assert await response.aread() == b"good:cached"
        await check_healthy(pool, srv)


# -- TLS ------------------------------------------------------------------------------


def send_and_fin(data: bytes) -> Fault:
    """Answer with ``data``, then a bare TCP FIN: no TLS close_notify."""

    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(data)
        conn.shutdown_write()
        conn.sleep(0.2)
        return False

    return fault


@pytest.mark.parametrize("how", ["fin-without-close-notify", "reset"])
async def test_tls_response_cut_mid_body(
    raw_server: RawServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    how: str,
) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"
    fault = send_and_fin(data) if how == "fin-without-close-notify" else send_and_reset(data)
    srv = raw_server(good_or(fault), ssl_context=server_ssl_context)
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, timeout=TIMEOUT) as pool:
        with pytest.raises((httpcore.RemoteProtocolError, httpcore.ReadError)):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


async def test_tls_malformed_response(
    raw_server: RawServerFactory, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(good_or(send_and_keep(b"garbage\r\n\r\n")), ssl_context=server_ssl_context)
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


def plain_http_answer(conn: RawConnection) -> None:
    conn.send(response(400, b"plain HTTP on a TLS port"))
    conn.close()


def reset_in_handshake(conn: RawConnection) -> None:
    conn.recv()  # the ClientHello
    conn.reset()


def garbage_in_handshake(conn: RawConnection) -> None:
    conn.recv()
    conn.send(b"\x16\x03\x03\x00\x05garbage and more garbage")
    conn.close()


@pytest.mark.parametrize(
    "handler",
    [plain_http_answer, reset_in_handshake, garbage_in_handshake],
    ids=["plain-http-server", "reset", "garbage"],
)
async def test_tls_handshake_failure(
    raw_server: RawServerFactory, client_ssl_context: ssl.SSLContext, handler: Handler
) -> None:
    srv = raw_server(handler)
    url = srv.url.replace("http://", "https://")
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, timeout=TIMEOUT) as pool:
        for _ in range(2):
            with pytest.raises(httpcore.ConnectError):
                await pool.request("GET", url + "/")
            assert pool.connections == []
    assert srv.connections_accepted == 2


# -- a body framed by Content-Length, counted past h11's buffer ----------------------

_BIG = bytes(range(256)) * 1024  # 256 KiB: more than one read, so the count takes over


def send_in_pieces(*pieces: bytes, then_close: bool = False) -> Fault:
    """Answer in several writes with pauses between them, so the client reads them apart."""

    def fault(conn: RawConnection, request: bytes) -> bool:
        for piece in pieces:
            conn.send(piece)
            conn.sleep(0.05)
        if then_close:
            conn.close()
            return False
        return True

    return fault


async def test_content_length_body_bypasses_h11_buffer(
    raw_server: RawServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body's bytes go from the network to the caller without passing through h11's
    buffer (it would copy each byte three times); h11 still ends the response."""
    import h11

    fed = 0
    receive_data = h11.Connection.receive_data

    def counting(self: h11.Connection, data: bytes) -> None:
        nonlocal fed
        fed += len(data)
        receive_data(self, data)

    monkeypatch.setattr(h11.Connection, "receive_data", counting)
    whole = ok(_BIG)
    srv = raw_server(good_or(send_in_pieces(whole[:1000], whole[1000:])))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        async with pool.stream("GET", srv.url + "/fault") as r:
            body = b"".join([chunk async for chunk in r.stream()])
        assert body == _BIG
        assert fed <= 1000  # the first read only: head and the start of the body
        assert len(pool.connections) == 1  # kept alive: h11 saw the body end
        await check_healthy(pool, srv)
    assert srv.connections_accepted == 1


async def test_bytes_past_a_counted_body(raw_server: RawServerFactory) -> None:
    whole = ok(_BIG)
    srv = raw_server(good_or(send_in_pieces(whole[:1000], whole[1000:] + ok(b"smuggled"))))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv.url + "/fault")
        assert r.body == _BIG
        assert pool.connections == []  # bytes after the response: never reused
        await check_healthy(pool, srv)


async def test_counted_body_cut_short(raw_server: RawServerFactory) -> None:
    whole = ok(_BIG)
    srv = raw_server(good_or(send_in_pieces(whole[:1000], whole[1000:-10], then_close=True)))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="peer closed connection"):
            await pool.request("GET", srv.url + "/fault")
        assert pool.connections == []
        await check_healthy(pool, srv)
