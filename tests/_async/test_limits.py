"""What a server can make us hold is bounded, and each refusal names its limit.

HTTP/1.1 against the raw fault server: the response head's size (whole, and while it is
still arriving), its number of header fields, the length of one of its lines, a chunked
body's framing lines. HTTP/2 against the scriptable h2 peer: the header list size we
advertise in SETTINGS and enforce on what arrives (decoded, and still encoded across
CONTINUATION frames), the number of header fields. Just under each limit is fine, and
after a refusal the pool serves the next request. (1xx responses: test_http11_faults.py
and test_http2.py; the server's stream limit: test_http2.py and test_threads.py.)
"""

from __future__ import annotations

import itertools
import time

import hyperframe.frame
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack.hpack import encode_integer

import httpcore
from httpcore._config import (
    MAX_HEADER_LIST_DECODED,
    MAX_HEADER_LIST_SIZE,
    MAX_RESPONSE_HEAD_SIZE,
    MAX_RESPONSE_HEADERS,
    MAX_RESPONSE_LINE,
    MAX_UNPROCESSED,
)
from tests.servers.h2raw import H2Peer, h2_handler
from tests.servers.raw import Handler, RawConnection, RawServer, RawServerFactory, good_or, per_connection

TIMEOUT = httpcore.Timeout(5.0)
_tokens = itertools.count()

HEAD_TOO_LARGE = f"The response head is larger than {MAX_RESPONSE_HEAD_SIZE} bytes"
TOO_MANY_HEADERS = f"more than {MAX_RESPONSE_HEADERS} header fields"
LINE_TOO_LONG = f"A line of the response head is longer than {MAX_RESPONSE_LINE} bytes"
FRAMING_TOO_LONG = (
    f"A chunk-size line or the trailers of the response are larger than {MAX_RESPONSE_HEAD_SIZE}"
)
LIST_TOO_LARGE = f"header list larger than {MAX_HEADER_LIST_SIZE} bytes, the SETTINGS_MAX_HEADER_LIST_SIZE "


def head(*lines: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines)


def with_body(head_bytes: bytes) -> bytes:
    return head_bytes + b"content-length: 2\r\n\r\nok"


def fields(count: int, size: int = 1) -> list[bytes]:
    """``count`` header lines, each with a value of ``size`` bytes."""
    return [b"x-%d: %s" % (i, b"v" * size) for i in range(count)]


# Within a limit, then just past it; each delivered in one piece (h11 parses it whole).
WHOLE = {
    "head-size": (fields(99, 1000), fields(103, 1000), HEAD_TOO_LARGE),
    "header-count": (fields(MAX_RESPONSE_HEADERS - 1), fields(MAX_RESPONSE_HEADERS + 1), TOO_MANY_HEADERS),
    "line-length": (
        [b"x-long: " + b"v" * (MAX_RESPONSE_LINE - 100)],
        [b"x-long: " + b"v" * MAX_RESPONSE_LINE],
        LINE_TOO_LONG,
    ),
}


def answer_with(data: bytes, then_wait: float = 0.0) -> Handler:
    def fault(conn: RawConnection, request: bytes) -> bool:
        conn.send(data)
        if then_wait:
            conn.sleep(then_wait)
            return False
        return True

    return good_or(fault)


async def check_healthy(pool: httpcore.AsyncConnectionPool, server: RawServer) -> None:
    token = b"%d" % next(_tokens)
    r = await pool.request("GET", f"{server.url}/good/{token.decode()}")
    assert (r.status_code, r.body) == (200, b"good:" + token)


@pytest.mark.parametrize("limit", list(WHOLE))
async def test_http11_head_limits(raw_server: RawServerFactory, limit: str) -> None:
    within, past, message = WHOLE[limit]
    srv_within = raw_server(answer_with(with_body(head(*within))))
    srv_past = raw_server(answer_with(with_body(head(*past))))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        r = await pool.request("GET", srv_within.url + "/fault")
        assert (r.status_code, r.body, len(r.headers)) == (200, b"ok", len(within) + 1)
        with pytest.raises(httpcore.RemoteProtocolError, match=message):
            await pool.request("GET", srv_past.url + "/fault")
        await check_healthy(pool, srv_past)
        await check_healthy(pool, srv_within)


async def test_http11_head_that_never_ends(raw_server: RawServerFactory) -> None:
    # No blank line: h11 gives up once it holds MAX_RESPONSE_HEAD_SIZE bytes of it.
    endless = head(*fields(150, 1000))
    srv = raw_server(answer_with(endless, then_wait=2.0))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=HEAD_TOO_LARGE):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


@pytest.mark.parametrize("with_head", [True, False], ids=["with-head", "later"])
async def test_http11_chunk_size_line_that_never_ends(raw_server: RawServerFactory, with_head: bool) -> None:
    chunked_head = head(b"transfer-encoding: chunked") + b"\r\n"
    line = b"2;" + b"x" * (MAX_RESPONSE_HEAD_SIZE + 10_000)  # no CRLF

    def fault(conn: RawConnection, request: bytes) -> bool:
        if with_head:
            conn.send(chunked_head + line)
        else:
            conn.send(chunked_head + b"2\r\nok\r\n")
            conn.sleep(0.1)
            conn.send(line)
        conn.sleep(2.0)
        return False

    srv = raw_server(good_or(fault))
    async with httpcore.AsyncConnectionPool(timeout=TIMEOUT) as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=FRAMING_TOO_LONG):
            await pool.request("GET", srv.url + "/fault")
        await check_healthy(pool, srv)


# -- HTTP/2 ---------------------------------------------------------------------------


def literal(data: bytes) -> bytes:
    """An HPACK string literal, not Huffman-coded."""
    return bytes(encode_integer(len(data), 7)) + data


def plain_block(headers: list[tuple[bytes, bytes]], status: bytes = b"200") -> bytes:
    """``:status`` then ``headers``, as literals the decoder does not index."""
    fields = b"".join(b"\x00" + literal(name) + literal(value) for name, value in headers)
    return b"\x08" + literal(status) + fields  # 8: the static table's :status


def send_block(peer: H2Peer, stream_id: int, block: bytes, body: bytes | None = None) -> None:
    """A header block written by hand, in frames of 16 KiB, then ``body`` ending the
    stream (None: the stream stays open)."""
    pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    frames: list[hyperframe.frame.Frame] = [hyperframe.frame.HeadersFrame(stream_id, data=pieces[0])]
    frames += [hyperframe.frame.ContinuationFrame(stream_id, data=piece) for piece in pieces[1:]]
    frames[-1].flags.add("END_HEADERS")
    if body is not None:
        frames.append(hyperframe.frame.DataFrame(stream_id, data=body, flags=["END_STREAM"]))
    peer.answered.add(stream_id)
    peer.send_raw(b"".join(frame.serialize() for frame in frames))


def respond_plainly(peer: H2Peer, stream_id: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """A 200 response whose header block is written by hand: literals without Huffman
    coding or indexing (so no HPACK state changes). h2's encoder would spend a second
    Huffman-coding a 100 KiB header list, and the client another decoding it."""
    send_block(peer, stream_id, plain_block(headers), body)


def serve_then(first: list[tuple[bytes, bytes]]) -> Handler:
    """Answer ``/1`` with ``first`` as its headers, any other path with ``ok:<path>``."""

    def script(peer: H2Peer) -> None:
        deadline = time.monotonic() + 5.0
        while not peer.closed and time.monotonic() < deadline:
            for request in peer.complete():
                if request.stream_id in peer.answered:
                    continue
                assert peer.h2.remote_settings.max_header_list_size == MAX_HEADER_LIST_SIZE
                if request.path == b"/1":
                    respond_plainly(peer, request.stream_id, first, b"first")
                else:
                    peer.respond(request.stream_id, body=b"ok:" + request.path)
            try:
                peer.receive(0.1)
            except TimeoutError:
                pass

    return h2_handler(script)


def h2_pool() -> httpcore.AsyncConnectionPool:
    return httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=TIMEOUT)


async def test_http2_header_list_within_the_limit(raw_server: RawServerFactory) -> None:
    big = [(b"x-big", b"v" * (MAX_HEADER_LIST_SIZE - 1000))]
    srv = raw_server(serve_then(big))
    async with h2_pool() as pool:
        r = await pool.request("GET", srv.url + "/1")
        assert (r.status_code, r.body, r.headers) == (200, b"first", big)
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
    assert srv.connections_accepted == 1


async def test_http2_header_list_past_the_limit(raw_server: RawServerFactory) -> None:
    # Decoded whole (hpack goes on to MAX_HEADER_LIST_DECODED), so only its stream fails.
    srv = raw_server(serve_then([(b"x-big", b"v" * MAX_HEADER_LIST_SIZE)]))
    async with h2_pool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=LIST_TOO_LARGE + "we advertise$"):
            await pool.request("GET", srv.url + "/1")
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
    assert srv.connections_accepted == 1


async def test_http2_header_list_past_the_limit_fails_only_its_stream(raw_server: RawServerFactory) -> None:
    # Stream 1 is mid-response when stream 3's head comes over the limit, its block
    # adding an entry to HPACK's table after the field that broke the limit: stream 3
    # is reset, stream 1 finishes, and stream 5's head, which refers to that entry,
    # decodes right (the table stayed the server's).
    added = (b"x-added", b"after the limit")
    big = (
        plain_block([(b"x-big", b"v" * MAX_HEADER_LIST_SIZE)])
        + b"\x40"
        + literal(added[0])
        + literal(added[1])
    )
    resets: list[bool] = []

    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one-", end=False)
        peer.wait_stream(3)
        send_block(peer, 3, big)  # no END_STREAM: the client must reset it
        resets.append(peer.wait(lambda: peer.requests[3].reset))
        peer.send_body(1, b"done")
        peer.wait_stream(5)
        send_block(peer, 5, b"\x88\xbe", b"five")  # :status 200, dynamic entry 62
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with h2_pool() as pool:
        async with pool.stream("GET", srv.url + "/1") as first:
            with pytest.raises(httpcore.RemoteProtocolError, match=LIST_TOO_LARGE):
                await pool.request("GET", srv.url + "/3")
            assert await first.aread() == b"one-done"
        r = await pool.request("GET", srv.url + "/5")
        assert (r.status_code, r.headers, r.body) == (200, [added], b"five")
    assert resets == [True]
    assert srv.connections_accepted == 1


async def test_http2_informational_header_list_past_the_limit(raw_server: RawServerFactory) -> None:
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        send_block(peer, 1, plain_block([(b"x-big", b"v" * MAX_HEADER_LIST_SIZE)], status=b"103"))
        peer.wait(lambda: peer.requests[1].reset)
        peer.serve_forever(timeout=5.0)

    srv = raw_server(h2_handler(script))
    async with h2_pool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=LIST_TOO_LARGE):
            await pool.request("GET", srv.url + "/1")
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
    assert srv.connections_accepted == 1


async def test_http2_header_list_that_inflates_fails_the_connection(raw_server: RawServerFactory) -> None:
    # A few hundred bytes referring again and again to one 4 KB entry of HPACK's table:
    # hpack stops at MAX_HEADER_LIST_DECODED, mid-block, and its table is lost with the
    # connection, with the response being read beside it; the next request gets a new
    # connection.
    entry = b"\x40" + literal(b"x-b") + literal(b"v" * 4000)
    bomb = b"\x88" + entry + b"\xbe" * (MAX_HEADER_LIST_DECODED // 4035 + 2)

    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.respond(1, body=b"one-", end=False)
        peer.wait_stream(3)
        send_block(peer, 3, bomb, b"")
        peer.wait_closed()

    def serve(peer: H2Peer) -> None:
        peer.serve_forever(timeout=5.0)

    srv = raw_server(per_connection(h2_handler(script), h2_handler(serve)))
    async with h2_pool() as pool:
        async with pool.stream("GET", srv.url + "/1") as first:
            with pytest.raises(httpcore.RemoteProtocolError, match=LIST_TOO_LARGE + ".*HPACK state is lost"):
                await pool.request("POST", srv.url + "/3", body=b"x")
            with pytest.raises(httpcore.RemoteProtocolError, match="HPACK state is lost"):
                await first.aread()
        assert (await pool.request("GET", srv.url + "/4")).body == b"ok:/4"
    assert srv.connections_accepted == 2


async def test_http2_header_block_that_never_ends(raw_server: RawServerFactory) -> None:
    # HEADERS then CONTINUATION frames, never END_HEADERS: refused once the encoded block
    # passes twice the limit, long before h2's own bound (64 frames of 64 KiB).
    def script(peer: H2Peer) -> None:
        peer.wait_stream(1)
        piece = b"\x00" * 16384
        frame = hyperframe.frame.HeadersFrame(1, data=piece)
        peer.send_raw(frame.serialize())
        for _ in range(2 * MAX_HEADER_LIST_SIZE // len(piece) + 2):
            peer.send_raw(hyperframe.frame.ContinuationFrame(1, data=piece).serialize())
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with h2_pool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=LIST_TOO_LARGE):
            await pool.request("GET", srv.url + "/")


async def test_http2_too_many_header_fields(raw_server: RawServerFactory) -> None:
    # Within the list size, past the count: that stream fails, the connection goes on.
    many = [(b"x-%d" % i, b"v") for i in range(MAX_RESPONSE_HEADERS + 1)]
    srv = raw_server(serve_then(many))
    async with h2_pool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=TOO_MANY_HEADERS):
            await pool.request("GET", srv.url + "/1")
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
    assert srv.connections_accepted == 1


# -- what a server can make us do: connections opened, slots held ----------------------


@pytest.mark.parametrize("refusal", ["refused-stream", "goaway"])
async def test_http2_server_refusing_every_stream(raw_server: RawServerFactory, refusal: str) -> None:
    # Each refusal is safe to retry elsewhere, but not for ever: each retry is a connection.
    def script(peer: H2Peer) -> None:
        peer.wait_headers(1)
        if refusal == "goaway":
            peer.goaway(0)
        else:
            peer.reset(1, ErrorCodes.REFUSED_STREAM)
        peer.wait_closed(timeout=0.5)

    srv = raw_server(h2_handler(script))
    async with h2_pool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match=r"refused|unprocessed"):
            await pool.request("GET", srv.url + "/")
    assert srv.connections_accepted <= MAX_UNPROCESSED + 2


async def test_http2_stream_limit_of_zero_does_not_hold_a_slot(raw_server: RawServerFactory) -> None:
    # A connection the server lets carry no stream is let go once idle, not kept holding
    # one of the pool's max_connections (which would starve every later request).
    def zero(peer: H2Peer) -> None:
        peer.wait_stream(1)
        peer.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 0})
        peer.respond(1, body=b"one")
        peer.wait_closed(timeout=2.0)

    def serve(peer: H2Peer) -> None:
        peer.serve_forever(timeout=5.0)

    srv = raw_server(per_connection(h2_handler(zero), h2_handler(serve)))
    timeout = httpcore.Timeout(5.0, pool=1.0)
    async with httpcore.AsyncConnectionPool(
        http1=False, http2=True, timeout=timeout, max_connections=1
    ) as pool:
        assert (await pool.request("GET", srv.url + "/1")).body == b"one"
        assert (await pool.request("GET", srv.url + "/2")).body == b"ok:/2"
    assert srv.connections_accepted == 2
