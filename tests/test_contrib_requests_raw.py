"""``Response.raw`` of HTTPCoreAdapter as urllib3's response, and content decoding.

Bodies come from the raw fault server, byte for byte as written here, through a real
``requests.Session`` with the adapter mounted.
"""

from __future__ import annotations

import gzip
import http.cookiejar
import os
import zlib
from collections.abc import Iterator

import brotli
import pytest
import requests
import urllib3
import zstandard

from httpcore.contrib.requests import HTTPCoreAdapter, RawResponse
from httpcore.contrib.requests._decoders import make_decoder
from tests.servers.raw import RawServerFactory, chunked, keep_alive, ok, response, scripted

BODY = b"Hello, world! " * 500


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        adapter = HTTPCoreAdapter()
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        yield s


def serve(raw_server: RawServerFactory, data: bytes) -> str:
    return raw_server(keep_alive(data)).url


def test_raw_attributes(session: requests.Session, raw_server: RawServerFactory) -> None:
    head = [(b"X-Multi", b"a"), (b"x-multi", b"b"), (b"Location", b"/elsewhere")]
    url = serve(raw_server, response(203, b"moved", head, reason=b"Found It"))
    r = session.get(url + "/path?q=1", stream=True)
    raw = r.raw
    assert isinstance(raw, RawResponse)
    assert (raw.status, raw.reason, raw.version, raw.version_string) == (203, "Found It", 11, "HTTP/1.1")
    assert r.reason == "Found It"
    assert raw.headers["x-multi"] == "a, b"
    assert r.headers["X-MULTI"] == "a, b"
    assert raw.getheader("location") == "/elsewhere"
    assert raw.getheader("missing", "dflt") == "dflt"
    assert raw.getheaders() is raw.headers and raw.info() is raw.headers
    assert raw.get_redirect_location() is False
    assert raw.geturl() == raw.url == url + "/path?q=1"
    assert raw.readable() and not raw.closed and not raw.isclosed()
    assert raw.supports_chunked_reads() and not raw.chunked
    assert raw.length_remaining == 5 and raw.tell() == 0
    assert raw.connection is not None
    raw.flush()
    with pytest.raises(OSError):
        raw.fileno()
    assert raw.read(2) == b"mo"
    assert raw.tell() == 5 and raw.length_remaining == 0
    assert raw.read(0) == b""
    assert raw.read(-1) == b"ved"
    assert raw.closed and raw.isclosed() and raw.connection is None
    assert raw.read() == b""
    assert repr(raw) == "<RawResponse [203]>"
    original = raw._original_response
    assert not original  # no cookies: requests skips its cookie jar
    assert original.status == 203 and original.reason == "Found It" and original.version == 11
    assert original.msg.get_all("X-Multi") == ["a", "b"]
    assert original.msg.get_all("nothing") is None
    assert original.headers is original.msg and original.info() is original.msg
    assert original.getheader("LOCATION") == "/elsewhere"
    assert original.getheaders()[0] == ("X-Multi", "a")
    assert original.isclosed()
    msg = original.msg
    assert msg["x-multi"] == "a" and "X-Multi" in msg and "nope" not in msg and 1 not in msg
    assert msg.keys()[:2] == ["X-Multi", "x-multi"] and msg.values()[0] == "a"
    assert next(iter(msg)) == "X-Multi" and len(msg) == 4
    assert str(msg).startswith("X-Multi: a\r\n")


def test_redirect_location(session: requests.Session, raw_server: RawServerFactory) -> None:
    url = serve(raw_server, response(302, b"moved", [(b"Location", b"/elsewhere")]))
    r = session.get(url, allow_redirects=False)
    assert r.is_redirect and r.raw.get_redirect_location() == "/elsewhere"


def test_cookies_from_repeated_set_cookie(session: requests.Session, raw_server: RawServerFactory) -> None:
    head = [(b"Set-Cookie", b"a=1; Path=/"), (b"Set-Cookie", b"b=2; Path=/")]
    url = serve(raw_server, ok(b"", head))
    r = session.get(url)
    assert r.cookies.get_dict() == {"a": "1", "b": "2"}
    assert session.cookies.get_dict() == {"a": "1", "b": "2"}
    assert r.raw._original_response
    assert r.headers["set-cookie"] == "a=1; Path=/, b=2; Path=/"
    jar = http.cookiejar.CookieJar()
    assert r.raw._original_response.msg.get_all("Set-Cookie2", []) == []
    assert len(jar) == 0


def test_read_exact_amounts_and_data(session: requests.Session, raw_server: RawServerFactory) -> None:
    body = bytes(range(256)) * 40
    url = serve(raw_server, response(200, chunked(body[:1000], body[1000:5000], body[5000:])))
    head = [(b"Transfer-Encoding", b"chunked")]
    url = serve(
        raw_server,
        response(200, chunked(body[:1000], body[1000:5000], body[5000:]), head, content_length=False),
    )
    r = session.get(url, stream=True)
    assert r.raw.chunked and r.raw.length_remaining is None
    pieces = [r.raw.read(999), r.raw.read(3000), r.raw.read(10), r.raw.read1(5), r.raw.read1()]
    assert [len(p) for p in pieces[:3]] == [999, 3000, 10]
    assert b"".join(pieces) + r.raw.read() == body
    r = session.get(url, stream=True)
    assert r.raw.data == body and r.raw.data == body
    r = session.get(url, stream=True)
    assert list(r.raw.read_chunked(4096)) and r.raw.closed
    r = session.get(url, stream=True)
    buffer = bytearray(100)
    assert r.raw.readinto(buffer) == 100 and bytes(buffer) == body[:100]
    assert len(r.raw.read1(100_000)) <= 100_000
    r.close()
    assert r.raw.closed and r.raw.data == b""


def test_stream_sizes(session: requests.Session, raw_server: RawServerFactory) -> None:
    url = serve(raw_server, ok(BODY))
    r = session.get(url, stream=True)
    sizes = [len(piece) for piece in r.iter_content(1000)]
    assert sum(sizes) == len(BODY) and max(sizes) == 1000
    r = session.get(url, stream=True)
    assert b"".join(r.raw.stream(None)) == BODY
    r = session.get(url, stream=True)
    assert list(r.raw.stream(0)) == []
    r.close()
    r = session.get(url, stream=True)
    assert [len(p) for p in r.iter_content(1)][:3] == [1, 1, 1]


def test_read_chunked_refuses_unchunked(session: requests.Session, raw_server: RawServerFactory) -> None:
    r = session.get(serve(raw_server, ok(b"abc")), stream=True)
    with pytest.raises(urllib3.exceptions.ResponseNotChunked):
        next(r.raw.read_chunked())
    r.close()


def test_lines(session: requests.Session, raw_server: RawServerFactory) -> None:
    r = session.get(serve(raw_server, ok(b"one\ntwo\n\nthree")), stream=True)
    assert list(r.raw) == [b"one\n", b"two\n", b"\n", b"three"]
    r = session.get(serve(raw_server, ok(b"one\ntwo\n")), stream=True)
    assert list(r.iter_lines()) == [b"one", b"two"]


def test_release_conn_mid_body_and_drain(session: requests.Session, raw_server: RawServerFactory) -> None:
    server = raw_server(keep_alive(ok(BODY)))
    r = session.get(server.url, stream=True)
    assert r.raw.read(10) == BODY[:10]
    r.raw.release_conn()
    assert r.raw.closed
    r.raw.release_conn()
    r = session.get(server.url, stream=True)
    r.raw.drain_conn()
    assert r.raw.closed
    assert session.get(server.url).content == BODY


def _gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(part) for part in parts)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODED = [
    ("gzip", gzip.compress(BODY)),
    ("x-gzip", gzip.compress(BODY)),
    ("gzip", _gzip_members(BODY[:100], BODY[100:])),
    ("gzip", gzip.compress(BODY) + b"\x00garbage"),
    ("deflate", zlib.compress(BODY)),
    ("deflate", _raw_deflate(BODY)),
    ("br", brotli.compress(BODY)),
    ("zstd", zstandard.ZstdCompressor().compress(BODY[:50]) + zstandard.ZstdCompressor().compress(BODY[50:])),
    ("gzip, br", brotli.compress(gzip.compress(BODY))),
    ("identity", BODY),
    ("compress", BODY),
]


# Named, not shown: gzip writes the time into its header, and pytest-xdist needs every
# worker to collect the same test ids.
ENCODED_IDS = [
    "gzip",
    "x-gzip",
    "gzip-members",
    "gzip-trailing-garbage",
    "deflate-zlib",
    "deflate-raw",
    "br",
    "zstd-frames",
    "gzip-then-br",
    "identity",
    "compress",
]


@pytest.mark.parametrize(("encoding", "data"), ENCODED, ids=ENCODED_IDS)
def test_decoding(
    session: requests.Session, raw_server: RawServerFactory, encoding: str, data: bytes
) -> None:
    url = serve(raw_server, ok(data, [(b"Content-Encoding", encoding.encode())]))
    assert session.get(url).content == BODY
    r = session.get(url, stream=True)
    assert r.raw.read() == data  # undecoded unless asked, as requests sets urllib3 up
    r = session.get(url, stream=True)
    assert r.raw.read(decode_content=True) == BODY
    r = session.get(url, stream=True)
    assert b"".join(r.raw.stream(7, decode_content=True)) == BODY
    assert r.raw.tell() == len(data)


def test_decoding_chunked_small_pieces(session: requests.Session, raw_server: RawServerFactory) -> None:
    data = gzip.compress(BODY)
    pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
    head = [(b"Content-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")]
    url = serve(raw_server, response(200, chunked(*pieces), head, content_length=False))
    assert session.get(url).content == BODY
    r = session.get(url, stream=True)
    assert b"".join(r.raw.read_chunked(decode_content=True)) == BODY


def test_decode_then_raw_read_refused(session: requests.Session, raw_server: RawServerFactory) -> None:
    data = gzip.compress(os.urandom(20_000))
    pieces = [data[i : i + 50] for i in range(0, len(data), 50)]
    head = [(b"Content-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")]
    url = serve(raw_server, response(200, chunked(*pieces), head, content_length=False))
    r = session.get(url, stream=True)
    r.raw.read(10, decode_content=True)
    with pytest.raises(RuntimeError, match="not supported"):
        r.raw.read(10_000_000, decode_content=False)
    r.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_broken_encoding(session: requests.Session, raw_server: RawServerFactory, encoding: str) -> None:
    url = serve(raw_server, ok(b"this is not compressed at all", [(b"Content-Encoding", encoding.encode())]))
    with pytest.raises(requests.exceptions.ContentDecodingError, match=f"content-encoding: {encoding}"):
        session.get(url)


def test_truncated_zstd(session: requests.Session, raw_server: RawServerFactory) -> None:
    data = zstandard.ZstdCompressor().compress(BODY)[:-5]
    url = serve(raw_server, ok(data, [(b"Content-Encoding", b"zstd")]))
    with pytest.raises(requests.exceptions.ContentDecodingError):
        session.get(url)


def test_decoders_directly() -> None:
    assert make_decoder("unknown, other") is None
    decoder = make_decoder("deflate")
    assert decoder is not None and decoder.decode(b"") == b"" and decoder.flush() == b""
    decoder = make_decoder("deflate")
    assert decoder is not None
    data = zlib.compress(BODY)
    # The first byte alone decodes to nothing yet, then the rest goes through.
    assert decoder.decode(data[:1]) == b""
    assert decoder.decode(data[1:]) + decoder.flush() == BODY
    decoder = make_decoder("br")
    assert decoder is not None and decoder.decode(b"") == b"" and decoder.flush() == b""
    chain = make_decoder("gzip, br")
    assert chain is not None and chain.flush() == b""


def test_head_and_204_have_no_body(session: requests.Session, raw_server: RawServerFactory) -> None:
    server = raw_server(
        keep_alive(response(204, b"", [(b"Content-Encoding", b"gzip")], content_length=False))
    )
    r = session.get(server.url)
    assert r.status_code == 204 and r.content == b""
    assert r.raw.length_remaining == 0
    server = raw_server(keep_alive(response(200, b"", [(b"Content-Length", b"10")], content_length=False)))
    r = session.head(server.url)
    assert r.content == b"" and r.headers["content-length"] == "10"


def test_content_length_oddities(session: requests.Session, raw_server: RawServerFactory) -> None:
    url = serve(raw_server, response(200, b"abc", [(b"Content-Length", b"3, 3")], content_length=False))
    r = session.get(url, stream=True)
    assert r.raw.length_remaining == 3 and r.content == b"abc"
    url = serve(
        raw_server, response(200, b"abc", [(b"Content-Length", b"x")], content_length=False) + b"\r\n"
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url)


def test_truncated_bodies(session: requests.Session, raw_server: RawServerFactory) -> None:
    url = raw_server(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")).url
    with pytest.raises(
        requests.exceptions.ChunkedEncodingError, match=r"IncompleteRead\(5 bytes read, 95 more"
    ):
        session.get(url)
    url = raw_server(scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")).url
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="Connection broken"):
        session.get(url)
    url = raw_server(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")).url
    r = session.get(url, stream=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        r.raw.read()
    assert r.raw.closed
    r = session.get(url, stream=True)
    r.raw.drain_conn()  # swallows the error
    assert r.raw.closed


def test_body_read_timeout(session: requests.Session, raw_server: RawServerFactory) -> None:
    def handler(conn: object) -> None:
        from tests.servers.raw import RawConnection

        assert isinstance(conn, RawConnection)
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.sleep(2)

    url = raw_server(handler).url
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        session.get(url, timeout=0.2)
    r = session.get(url, timeout=0.2, stream=True)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        r.raw.read()


class _Body:
    """A body stream as the pool hands it out: iterable, closable."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.closed = False

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        if not self.chunks:
            raise StopIteration
        return self.chunks.pop(0)

    def close(self) -> None:
        self.closed = True


def make_raw(headers: list[tuple[bytes, bytes]], *chunks: bytes, method: str = "GET") -> RawResponse:
    import httpcore
    from httpcore.contrib.requests._errors import Endpoint

    response = httpcore.Response(200, headers=headers, content=_Body(*chunks))
    return RawResponse(response, Endpoint("http", "h", 80, "http://h/", "/"), method)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"12", 12), (b"3, 3", 3), (b"3, 4", None), (b"x", None)],
)
def test_content_length_values(value: bytes, expected: int | None) -> None:
    raw = make_raw([(b"Content-Length", value)], b"")
    assert raw.length_remaining == expected
    assert make_raw([(b"Content-Length", value)], method="HEAD").length_remaining == 0


def test_headers_replaced_or_edited_are_what_counts() -> None:
    raw = make_raw([(b"A", b"1"), (b"a", b"2")], b"abc")
    assert raw.joined_headers == {"a": ("A", "1, 2")}
    raw.headers["Content-Encoding"] = "gzip"
    assert raw.header("content-encoding") == "gzip"
    assert raw.joined_headers["content-encoding"] == ("Content-Encoding", "gzip")
    raw.headers = urllib3.HTTPHeaderDict({"X": "y"})
    assert raw.header("x") == "y" and raw.getheader("X") == "y"


def test_small_reads_and_lines_without_newline_at_end() -> None:
    raw = make_raw([], b"ab", b"", b"cd\nef")
    assert raw.read1(0) == b"" and raw.read1(-1) == b"ab"
    assert list(raw) == [b"cd\n", b"ef"]
    raw = make_raw([], b"abcdef")
    assert raw.read1(2) == b"ab" and raw.read(-5) == b"cdef"
    raw = make_raw([], b"abc")
    raw.close()
    assert raw.closed and raw.read1() == b""


def test_release_callback_runs_once() -> None:
    import httpcore
    from httpcore.contrib.requests._errors import Endpoint

    released: list[int] = []
    body = _Body(b"abc")
    response = httpcore.Response(200, content=body)
    raw = RawResponse(
        response, Endpoint("http", "h", 80, "http://h/", "/"), "GET", None, lambda: released.append(1)
    )
    raw.release_conn()
    raw.close()
    assert released == [1] and body.closed
