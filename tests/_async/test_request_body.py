"""Iterable request bodies: an empty one is no body at all (what httpx sends for a GET).

httpx hands its core an iterable yielding ``b""`` for every request without content;
sent chunked, each GET would carry ``Transfer-Encoding: chunked`` and an empty chunked
body (and on HTTP/2 an empty DATA frame), which servers may refuse. So the first
non-empty chunk decides the framing.
"""

from __future__ import annotations

import json
import typing

import pytest

import httpcore
from httpcore._async.request_body import close_body, first_chunk
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.h2raw import H2Peer, H2Request, h2_handler
from tests.servers.raw import RawConnection, RawServerFactory


async def chunks(*parts: bytes) -> typing.AsyncIterator[bytes]:
    for part in parts:
        yield part


def header_names(body: bytes) -> set[str]:
    return {name for name, _ in json.loads(body)["headers"]}


async def test_empty_iterable_body_is_no_body(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + "/echo_headers", body=chunks(b""))
        assert not header_names(r.body) & {"transfer-encoding", "content-length"}
        r = await http.request("GET", server.url + "/echo_headers", body=iter([b"", b""]))
        assert not header_names(r.body) & {"transfer-encoding", "content-length"}
        r = await http.request("POST", server.url + "/echo_headers", body=chunks())
        assert ["content-length", "0"] in json.loads(r.body)["headers"]
        assert len(http.connections) == 1  # one connection served all three


async def test_leading_empty_chunks_are_skipped_and_the_rest_sent(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("POST", server.url + "/echo_body", body=chunks(b"", b"ab", b"", b"cd"))
        assert r.body == b"abcd"
        parts: list[typing.Any] = [b"", bytearray(b"xy")]
        r = await http.request("POST", server.url + "/echo_body", body=iter(parts))
        assert r.body == b"xy"


@pytest.mark.parametrize("body", [[b"", "text"], ["text"]])
async def test_a_chunk_that_is_not_bytes_is_refused(server: UvicornServer, body: list[typing.Any]) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(TypeError, match="must be bytes, not str"):
            await http.request("POST", server.url + "/echo_body", body=iter(body))
        assert (await http.request("GET", server.url + "/")).body == b"Hello, world!"


async def test_http2_empty_iterable_body_is_an_empty_body(
    raw_server: RawServerFactory,
) -> None:
    seen: list[H2Request] = []

    def script(peer: H2Peer) -> None:
        for stream_id in (1, 3):
            seen.append(peer.wait_stream(stream_id))
            peer.respond(stream_id, body=b"ok")
        peer.wait_closed()

    srv = raw_server(h2_handler(script))
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        assert (await pool.request("GET", srv.url + "/", body=chunks(b""))).body == b"ok"
        assert (await pool.request("POST", srv.url + "/", body=chunks(b"", b"data"))).body == b"ok"
    assert seen[0].complete and seen[0].body == b""
    assert seen[1].body == b"data"


class Generated:
    """An iterable body whose iterator is a new generator each time (as httpx's
    ByteStream): that generator is ours to close, whatever ends the upload."""

    def __init__(self, *parts: typing.Any) -> None:
        self.parts = parts
        self.closed = 0

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        try:
            for part in self.parts:
                yield part
        finally:
            self.closed += 1


async def test_the_iterator_taken_from_the_body_is_closed(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        body = Generated(b"x" * 65536, "not bytes", b"never sent")
        with pytest.raises(TypeError):  # the upload ends half way
            await http.request("POST", server.url + "/echo_body", body=body)
        assert body.closed == 1
        body = Generated(b"abc", b"def")
        assert (await http.request("POST", server.url + "/echo_body", body=body)).body == b"abcdef"
        assert body.closed == 1  # exhausted, then closed


async def test_the_callers_own_iterator_is_left_to_the_caller(server: UvicornServer) -> None:
    finished: list[bool] = []

    async def body() -> typing.AsyncGenerator[typing.Any, None]:
        try:
            yield b"x" * 65536
            yield "not bytes"
            yield b"never sent"
        finally:
            finished.append(True)

    generator = body()
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(TypeError):
            await http.request("POST", server.url + "/echo_body", body=generator)
    assert finished == []  # not closed by us: the caller's object
    await generator.aclose()
    assert finished == [True]


async def test_http2_closes_the_iterator_it_took(h2c_server: HypercornServer) -> None:
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        body = Generated(b"x" * 65536, b"y")
        r = await pool.request("POST", h2c_server.url + "/echo_body", body=body)
        assert (len(r.body), body.closed) == (65537, 1)
        body = Generated(b"x", "not bytes")
        with pytest.raises(TypeError):
            await pool.request("POST", h2c_server.url + "/echo_body", body=body)
        assert body.closed == 1


def stale_after_one(conn: RawConnection) -> None:
    """Answer one request, then read the next and close without answering (a server's
    keep-alive timeout racing the client); later connections are answered normally."""
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    if conn.index == 0 and conn.read_request() is not None:
        conn.close()
        return
    while conn.read_request() is not None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def test_an_empty_iterable_body_is_sent_again_on_a_stale_connection(
    raw_server: RawServerFactory,
) -> None:
    # httpx's GET: its empty body is found empty, so the retry on a new connection is safe.
    srv = raw_server(stale_after_one)
    async with httpcore.AsyncConnectionPool() as pool:
        assert (await pool.request("GET", srv.url + "/", body=chunks(b""))).body == b"ok"
        assert (await pool.request("GET", srv.url + "/", body=chunks(b""))).body == b"ok"
        assert srv.connections_accepted == 2


async def test_closing_before_the_upload_started_closes_the_taken_iterator() -> None:
    # Say the head's write timed out: the first chunk was taken, nothing iterated since.
    body = Generated(b"abc", b"def")
    rest = await first_chunk(body)
    await close_body(rest)
    await close_body(rest)  # once is enough
    assert body.closed == 1
    assert await first_chunk(Generated(b"", b"")) == b""
    with pytest.raises(TypeError, match="must be bytes, not int"):
        await first_chunk(Generated(b"", 3))


async def test_traced_request_with_an_empty_iterable_body(server: UvicornServer) -> None:
    names: list[str] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        names.append(name)

    async with httpcore.AsyncConnectionPool() as http:
        extensions = {"trace": trace}
        r = await http.request("GET", server.url + "/echo_headers", body=chunks(b""), extensions=extensions)
        assert not header_names(r.body) & {"transfer-encoding", "content-length"}
        r = await http.request(
            "POST", server.url + "/echo_body", body=Generated(b"ab", b"c"), extensions=extensions
        )
        assert r.body == b"abc"
    assert names.count("http11.send_request_body.complete") == 2
