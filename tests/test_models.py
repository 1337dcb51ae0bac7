"""Models: URL parsing, header and method validation, Request/Response, Timeout, Limits."""

from __future__ import annotations

import typing

import pytest

import httpcore
from httpcore._models import ByteStream


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "target", "origin_port"),
    [
        ("http://example.com", b"http", b"example.com", None, b"/", 80),
        ("https://example.com/a/b?x=1&y=2", b"https", b"example.com", None, b"/a/b?x=1&y=2", 443),
        ("http://Example.COM:8080/p", b"http", b"example.com", 8080, b"/p", 8080),
        ("http://[::1]:8000/", b"http", b"::1", 8000, b"/", 8000),
        ("https://[2001:db8::1]/x", b"https", b"2001:db8::1", None, b"/x", 443),
        ("http://127.0.0.1/p?", b"http", b"127.0.0.1", None, b"/p?", 80),
        ("http://h/p#frag", b"http", b"h", None, b"/p", 80),
        ("http://bücher.example/", b"http", b"xn--bcher-kva.example", None, b"/", 80),
    ],
)
def test_url_parsing(
    url: str, scheme: bytes, host: bytes, port: int | None, target: bytes, origin_port: int
) -> None:
    parsed = httpcore.URL(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.target) == (scheme, host, port, target)
    assert parsed.origin == httpcore.Origin(scheme, host, origin_port)
    assert httpcore.URL(url.encode("utf-8")) == parsed if url.isascii() else True


def test_url_from_parts_and_round_trip() -> None:
    url = httpcore.URL(scheme="https", host="::1", port=8443, target="/a?b")
    assert str(url) == "https://[::1]:8443/a?b"
    assert bytes(url) == b"https://[::1]:8443/a?b"
    assert url == "https://[::1]:8443/a?b"
    assert url == httpcore.URL("https://[::1]:8443/a?b")
    assert hash(url) == hash(httpcore.URL("https://[::1]:8443/a?b"))
    assert url != 3
    assert repr(url) == "URL('https://[::1]:8443/a?b')"
    assert str(url.origin) == "https://[::1]:8443"
    assert httpcore.URL(scheme=b"http", host=b"h").target == b"/"


@pytest.mark.parametrize(
    "url",
    [
        "http://exa mple.com/",
        "http://example.com/a b",
        "http://example.com/\r\nX-Injected: 1",
        "http://example.com/\x00",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http:///nohost",
        "http://user:pass@example.com/",
        "http://[::1/",
        "http://example.com/ü",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.URL(url)


@pytest.mark.parametrize("url", ["example.com/path", "//example.com/", "/relative"])
def test_urls_without_scheme_are_unsupported(url: str) -> None:
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.URL(url)


def test_unknown_scheme_is_unsupported_at_request_time() -> None:
    url = httpcore.URL("ftp://example.com/")
    with pytest.raises(httpcore.UnsupportedProtocol):
        url.origin
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.ConnectionPool().request("GET", "ftp://example.com/")


def test_url_parts_validation() -> None:
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.URL(scheme="http", host="h", target="/a\r\nb")
    for port in (0, 123456):  # kept, but refused as a connect failure when used
        url = httpcore.URL(scheme="http", host="h", port=port)
        with pytest.raises(httpcore.ConnectError, match="ports are 1 to 65535"):
            url.origin
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.URL(scheme="http", host="h\u00fc")
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.URL(scheme="http", host="").origin
    with pytest.raises(TypeError):
        httpcore.URL(scheme="http", host=3)  # type: ignore[arg-type]


def test_headers_are_normalised() -> None:
    request = httpcore.Request(
        "GET",
        "http://h/",
        headers=[("X-Str", "value"), (b"X-Bytes", b"v2"), ("X-Latin", "caf\u00e9")],
    )
    assert request.headers == [(b"X-Str", b"value"), (b"X-Bytes", b"v2"), (b"X-Latin", b"caf\xe9")]
    assert httpcore.Request("GET", "http://h/", headers={"a": "b"}).headers == [(b"a", b"b")]
    assert httpcore.Request("GET", "http://h/").headers == []


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-Bad", b"a\r\nInjected: 1")],
        [(b"X-Bad", b"a\nb")],
        [(b"X-Bad", b"a\x00b")],
        [(b"X Bad", b"v")],
        [(b"X-Bad\r\n", b"v")],
        [(b"", b"v")],
        [("X-Bad", "\u20ac")],
        [("X-\u00fc", "v")],
    ],
)
def test_header_injection_is_refused(headers: list[tuple[bytes | str, bytes | str]]) -> None:
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.Request("GET", "http://h/", headers=headers)


def test_header_types_are_checked() -> None:
    with pytest.raises(TypeError):
        httpcore.Request("GET", "http://h/", headers=[(b"a", 1)])  # type: ignore[list-item]


@pytest.mark.parametrize("method", ["GE T", "GET\r\n", "", b"P\x00ST"])
def test_bad_methods_are_refused(method: str | bytes) -> None:
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.Request(method, "http://h/")


def test_request_model() -> None:
    request = httpcore.Request("POST", httpcore.URL("http://h/"), content=bytearray(b"ab"))
    assert request.method == b"POST"
    assert request.content == b"ab"
    assert request.stream == b"ab"
    assert request.extensions == {}
    assert repr(request) == "<Request [POST http://h/]>"
    with pytest.raises(TypeError):
        httpcore.Request("POST", "http://h/", content="text")  # type: ignore[arg-type]


def test_response_model_with_body() -> None:
    response = httpcore.Response(
        200,
        headers=[("Content-Type", "text/plain")],
        content=b"hello",
        extensions={"http_version": b"HTTP/1.0", "reason_phrase": b"OK"},
    )
    assert response.status_code == response.status == 200
    assert response.headers == [(b"Content-Type", b"text/plain")]
    assert response.body == response.content == b"hello"
    assert response.http_version == b"HTTP/1.0"
    assert response.reason_phrase == b"OK"
    assert list(response.stream()) == [b"hello"]
    assert response.read() == b"hello"
    assert repr(response) == "<Response [200]>"
    with response as entered:
        assert entered is response
    empty = httpcore.Response(204)
    assert empty.body == b""
    assert empty.http_version == b"HTTP/1.1"
    assert empty.reason_phrase == b""
    assert list(empty.iter_stream()) == []


def test_response_model_with_sync_stream() -> None:
    response = httpcore.Response(200, content=iter([b"a", b"b"]))
    with pytest.raises(RuntimeError):
        response.body
    with pytest.raises(RuntimeError):
        import asyncio

        asyncio.run(response.aread())
    stream = ByteStream(b"ab")
    response.stream = stream
    assert response.read() == b"ab"
    assert response.body == b"ab"
    assert list(response.stream) == [b"ab"]
    response.close()


async def test_response_model_with_async_stream() -> None:
    async def chunks() -> typing.AsyncIterator[bytes]:
        yield b"x"

    with pytest.raises(RuntimeError):
        httpcore.Response(200, content=chunks()).read()
    stream = ByteStream(b"xyz")
    response = httpcore.Response(200, content=stream)
    assert [chunk async for chunk in response.aiter_stream()] == [b"xyz"]
    await stream.aclose()
    response = httpcore.Response(200, content=ByteStream(b"xyz"))
    assert await response.aread() == b"xyz"
    async with response as entered:
        assert entered is response
    assert [chunk async for chunk in ByteStream(b"")] == []


def test_timeout_and_limits() -> None:
    assert httpcore.Timeout(5.0).as_dict() == {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    timeout = httpcore.Timeout(5.0, read=None)
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (5.0, None, 5.0, 5.0)
    assert httpcore.Timeout(connect=1.0).as_dict() == {
        "connect": 1.0,
        "read": None,
        "write": None,
        "pool": None,
    }
    assert httpcore.Timeout.coerce(2.0) == httpcore.Timeout(2.0)
    assert httpcore.Timeout.coerce({"read": 1.0}) == httpcore.Timeout(read=1.0)
    assert httpcore.Timeout.coerce(timeout) is timeout
    assert httpcore.Timeout(1.0) != 1.0
    assert "read=None" in repr(timeout)
    with pytest.raises(TypeError):
        httpcore.Timeout.coerce({"bogus": 1.0})
    limits = httpcore.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=1.0)
    assert "max_connections=10" in repr(limits)
    with pytest.raises(ValueError):
        httpcore.Limits(max_connections=0)
    with pytest.raises(ValueError):
        httpcore.Limits(max_keepalive_connections=-1)


def test_exception_tree() -> None:
    tree = {
        httpcore.ConnectTimeout: httpcore.TimeoutException,
        httpcore.ReadTimeout: httpcore.TimeoutException,
        httpcore.WriteTimeout: httpcore.TimeoutException,
        httpcore.PoolTimeout: httpcore.TimeoutException,
        httpcore.ConnectError: httpcore.NetworkError,
        httpcore.ReadError: httpcore.NetworkError,
        httpcore.WriteError: httpcore.NetworkError,
        httpcore.RemoteProtocolError: httpcore.ProtocolError,
        httpcore.LocalProtocolError: httpcore.ProtocolError,
        httpcore.ProxyError: httpcore.HTTPCoreError,
        httpcore.UnsupportedProtocol: httpcore.HTTPCoreError,
        httpcore.PoolClosed: httpcore.HTTPCoreError,
    }
    for child, parent in tree.items():
        assert issubclass(child, parent)
        assert issubclass(child, httpcore.HTTPCoreError)


def test_default_ssl_context_is_shared_and_verifying() -> None:
    import ssl

    context = httpcore.default_ssl_context()
    assert context is httpcore.default_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert httpcore.default_ssl_context(("h2", "http/1.1")) is not context


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("http://example.com/", b"example.com"),
        ("https://example.com:443/", b"example.com"),
        ("http://example.com:8080/", b"example.com:8080"),
        ("https://example.com:80/", b"example.com:80"),
        ("http://[::1]/", b"[::1]"),
        ("https://[::1]:8443/", b"[::1]:8443"),
    ],
)
def test_origin_authority(url: str, authority: bytes) -> None:
    assert httpcore.URL(url).origin.authority == authority
