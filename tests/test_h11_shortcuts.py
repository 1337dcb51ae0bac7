"""The shortcuts through h11 (``httpcore/_h11_shortcuts.py``): response heads parsed
once, a whole counted body taken at once; driven through h11 directly, and through a
pool on loopback."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import h11
import pytest

import httpcore
from httpcore import _h11_shortcuts as _h11_heads
from tests.servers.raw import RawServerFactory, keep_alive, ok

HEAD = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\n"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    _h11_heads._heads.clear()
    yield
    _h11_heads._heads.clear()


def exchange(h: h11.Connection, response: bytes) -> list[typing.Any]:
    """One request/response cycle on ``h``; the events h11 gave for ``response``."""
    h.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    h.send(h11.EndOfMessage())
    h.receive_data(response)
    _h11_heads.install_head_cache(h)
    events: list[typing.Any] = []
    while True:
        event = h.next_event()
        if event is h11.NEED_DATA:
            break
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            h.start_next_cycle()
            break
    return events


def test_response_head_parsed_once() -> None:
    """Fails loudly if h11's private details the cache leans on change: the reader is
    swapped for the caching one, and a repeated head gives h11's first event again."""
    h = h11.Connection(h11.CLIENT)
    h.send(h11.Request(method="HEAD", target="/", headers=[("Host", "x")]))
    h.send(h11.EndOfMessage())
    _h11_heads.install_head_cache(h)
    assert h._reader is _h11_heads._read_head, "h11's reader of a response head was replaced"
    h.receive_data(HEAD)
    assert isinstance(h.next_event(), h11.Response)
    assert h.next_event() == h11.EndOfMessage()  # a HEAD response has no body
    h.start_next_cycle()
    first = exchange(h, HEAD + b"ok")
    assert h._reader is not _h11_heads._read_head  # the cycle moved on to the body
    second = exchange(h, HEAD + b"ok")
    assert first[0] is second[0], "the second head came from the cache"
    assert second == [first[0], h11.Data(data=b"ok"), h11.EndOfMessage()]
    assert list(_h11_heads._heads) == [HEAD]
    other = exchange(h11.Connection(h11.CLIENT), HEAD + b"ok")
    assert other[0] is first[0], "shared by every connection"


def test_informational_then_final_head() -> None:
    h = h11.Connection(h11.CLIENT)
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    events = exchange(h, hints + HEAD + b"ok")
    assert [type(e) for e in events] == [h11.InformationalResponse, h11.Response, h11.Data, h11.EndOfMessage]
    again = exchange(h, hints + HEAD + b"ok")
    assert again[:2] == events[:2] and again[0] is events[0] and again[1] is events[1]


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",  # bare LF: h11 ends the head where it likes
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000 + b"\r\nContent-Length: 2\r\n\r\nok",  # too long
    ],
)
def test_heads_parsed_but_not_kept(response: bytes) -> None:
    h = h11.Connection(h11.CLIENT)
    for _ in range(2):
        events = exchange(h, response)
        assert isinstance(events[0], h11.Response) and events[0].status_code == 200
        assert events[1:] == [h11.Data(data=b"ok"), h11.EndOfMessage()]
    assert _h11_heads._heads == {}


def test_malformed_head_is_h11s_error() -> None:
    h = h11.Connection(h11.CLIENT)
    with pytest.raises(h11.RemoteProtocolError):
        exchange(h, b"HTTP/1.1 2x0 OK\r\n\r\n")
    assert _h11_heads._heads == {}


def test_cache_is_bounded() -> None:
    h = h11.Connection(h11.CLIENT)
    for n in range(_h11_heads.HEADS_KEPT + 5):
        events = exchange(h, b"HTTP/1.1 200 OK\r\nX-N: %d\r\nContent-Length: 0\r\n\r\n" % n)
        assert events[0].headers[0] == (b"x-n", b"%d" % n)
    assert len(_h11_heads._heads) <= _h11_heads.HEADS_KEPT


def test_through_the_pool(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok(b"cached", [(b"X-Same", b"1")])))
    with httpcore.ConnectionPool() as http:
        responses = [http.request("GET", srv.url + "/") for _ in range(3)]
    assert [(r.status_code, r.body) for r in responses] == [(200, b"cached")] * 3
    assert [r.headers for r in responses] == [[(b"X-Same", b"1"), (b"content-length", b"6")]] * 3
    assert len(_h11_heads._heads) == 1
    assert srv.connections_accepted == 1


def response_head_read(response: bytes) -> h11.Connection:
    """An h11 client connection that has sent a GET, been fed ``response`` and given
    back the response head."""
    h = h11.Connection(h11.CLIENT)
    h.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    h.send(h11.EndOfMessage())
    h.receive_data(response)
    assert isinstance(h.next_event(), h11.Response)
    return h


def test_counted_body_taken_whole() -> None:
    """Fails loudly if the h11 details it leans on change: the body comes out whole and
    h11 goes straight to the end of the message, with the next response intact."""
    h = response_head_read(HEAD + b"ok" + HEAD + b"no")
    assert _h11_heads.take_counted_body(h) == b"ok"
    assert h.next_event() == h11.EndOfMessage()
    h.start_next_cycle()
    unread, closed = h.trailing_data
    assert (bytes(unread), closed) == (HEAD + b"no", False)


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (HEAD + b"o", None),  # not all there yet
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", None),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),  # no body: h11 counts zero bytes
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
    ],
)
def test_counted_body_left_to_h11(response: bytes, body: bytes | None) -> None:
    h = response_head_read(response)
    assert _h11_heads.take_counted_body(h) == body
    events: list[typing.Any] = []
    while (event := h.next_event()) is not h11.NEED_DATA:
        events.append(event)
        if type(event) is h11.EndOfMessage:
            break
    if response == HEAD + b"o":
        assert events == [h11.Data(data=b"o")], "h11 read what there was, as ever"
    else:
        assert events[-1] == h11.EndOfMessage()


def request_head_sent(headers: list[tuple[str, str]]) -> h11.Connection:
    h = h11.Connection(h11.CLIENT)
    h.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), *headers]))
    return h


def test_counted_request_body() -> None:
    """Fails loudly if the h11 details it leans on change: chunks that fit the declared
    length are counted by h11, which then ends the body, and refuses one byte more."""
    h = request_head_sent([("Content-Length", "5")])
    assert _h11_heads.count_body_chunk(h, 3)
    assert not _h11_heads.count_body_chunk(h, 3), "past the declared length: left to h11"
    with pytest.raises(h11.LocalProtocolError, match="Too much data"):
        h.send(h11.Data(data=b"abc"))
    h = request_head_sent([("Content-Length", "5")])
    assert _h11_heads.count_body_chunk(h, 3) and _h11_heads.count_body_chunk(h, 2)
    assert h.send(h11.EndOfMessage()) == b""
    assert h.our_state is h11.DONE
    h = request_head_sent([("Content-Length", "5")])
    assert _h11_heads.count_body_chunk(h, 4)
    with pytest.raises(h11.LocalProtocolError, match="Too little data"):
        h.send(h11.EndOfMessage())


def test_chunked_request_body_goes_through_h11() -> None:
    h = request_head_sent([("Transfer-Encoding", "chunked")])
    assert not _h11_heads.count_body_chunk(h, 3)
    assert h.send(h11.Data(data=b"abc")) == b"3\r\nabc\r\n"
    h = h11.Connection(h11.CLIENT)
    assert not _h11_heads.count_body_chunk(h, 3), "no request sent yet"


def test_counted_upload_through_the_pool(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok(b"stored")))
    body = [b"a" * 70000, b"b" * 30000, b"c"]
    with httpcore.ConnectionPool() as http:
        response = http.request(
            "PUT", srv.url + "/", headers=[(b"Content-Length", b"100001")], body=iter(body)
        )
        assert response.body == b"stored"
        with pytest.raises(httpcore.LocalProtocolError, match="Too much data"):
            http.request("PUT", srv.url + "/", headers=[(b"Content-Length", b"3")], body=iter([b"ab", b"cd"]))
    assert srv.requests[0].endswith(b"\r\n\r\n" + b"".join(body))


@pytest.mark.parametrize(
    ("response", "framing"),
    [
        (HEAD, _h11_heads.LENGTH),
        (b"HTTP/1.1 204 No Content\r\n\r\n", _h11_heads.LENGTH),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", _h11_heads.CHUNKED),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", None),
    ],
)
def test_body_framing_is_h11s(response: bytes, framing: str | None) -> None:
    """Fails loudly if h11's reader classes move: each framing is recognised."""
    assert _h11_heads.body_framing(response_head_read(response)) == framing


def test_counted_body_received_past_h11() -> None:
    """Bytes of a body framed by Content-Length are counted off h11's reader, as if it
    had read them; it then ends the body, and is never asked for more than is due."""
    h = response_head_read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert h.next_event() is h11.NEED_DATA
    assert _h11_heads.count_body_received(h, b"abc") == 3
    assert _h11_heads.count_body_received(h, b"deHTTP") == 2
    assert h.next_event() == h11.EndOfMessage()
    assert _h11_heads.count_body_received(h, b"x") is None  # no body being read
