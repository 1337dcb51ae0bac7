"""Proxies of our own: an HTTPS proxy (TLS to the proxy, TLS in TLS to the origin),
refusals, garbage, and proxies that stall at every step of the connect (each must end
in ConnectTimeout within the connect timeout)."""

from __future__ import annotations

import json
import ssl
import time
import typing
from collections.abc import Iterator

import pytest

import httpcore
from tests.servers import tls
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.http_proxy import ProxyServer
from tests.servers.netutil import bind_listener, has_ipv6_loopback
from tests.servers.raw import RawConnection, RawServerFactory

AUTH = ("proxy-user", "pass-w0rd!")
CONNECT_TIMEOUT = 0.5
LATE = CONNECT_TIMEOUT + 2.0  # generous: the machine is shared


@pytest.fixture
def https_proxy() -> Iterator[ProxyServer]:
    proxy = ProxyServer(ssl_context=tls.server_ssl_context(), auth=AUTH).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def http_proxy() -> Iterator[ProxyServer]:
    proxy = ProxyServer(auth=AUTH).start()
    yield proxy
    proxy.stop()


def echoed(response: httpcore.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in json.loads(response.body)["headers"]}


async def test_https_proxy_forwards_on_one_kept_alive_connection(
    https_proxy: ProxyServer, server: UvicornServer, server_ipv6: UvicornServer
) -> None:
    proxy = httpcore.Proxy(
        https_proxy.url,
        auth=AUTH,
        headers=[("X-Proxy-Note", "for the proxy")],
        ssl_context=tls.client_ssl_context(),
    )
    events: list[tuple[str, typing.Any]] = []

    async def trace(name: str, info: typing.Any) -> None:
        events.append((name, info))

    async with httpcore.AsyncConnectionPool(proxy=proxy, http2=True) as http:
        for origin in (server.url, server_ipv6.url, server.url):
            r = await http.request("GET", origin + "/echo_headers?q=1", extensions={"trace": trace})
            assert r.status_code == 200
            assert echoed(r)["host"] == origin.split("//")[1]
        assert len(http.connections) == 1
    assert https_proxy.connections == 1
    assert https_proxy.heads[1].startswith(
        b"GET http://[::1]:%d/echo_headers?q=1 HTTP/1.1\r\n" % server_ipv6.port
    )
    for head in https_proxy.heads:
        assert b"\r\nX-Proxy-Note: for the proxy\r\n" in head
        assert b"\r\nProxy-Authorization: Basic " in head
    assert AUTH[1] not in repr(events) and AUTH[1] not in repr(proxy)
    traced = [info["request"] for _, info in events if "request" in info]
    assert traced and all(b"Proxy-Authorization" not in dict(request.headers) for request in traced)
    assert {request.url.target for request in traced} == {b"/echo_headers?q=1"}


async def test_tls_in_tls_http2_origin(https_proxy: ProxyServer, h2_server: HypercornServer) -> None:
    proxy = httpcore.Proxy(https_proxy.url, auth=AUTH, ssl_context=tls.client_ssl_context())
    events: list[tuple[str, typing.Any]] = []

    async def trace(name: str, info: typing.Any) -> None:
        events.append((name, info))

    async with httpcore.AsyncConnectionPool(
        proxy=proxy, ssl_context=tls.client_ssl_context(), http2=True
    ) as http:
        url = f"https://localhost:{h2_server.port}/stream?size=1000000&chunk=30000"
        r = await http.request("GET", url, extensions={"trace": trace})
        connect = [name for name, _ in events if name.startswith("connection.")]
        assert connect == [
            "connection.connect_tcp.started",
            "connection.connect_tcp.complete",
            "connection.start_tls.started",  # to the proxy
            "connection.start_tls.complete",
            "connection.proxy_connect.started",
            "connection.proxy_connect.complete",
            "connection.start_tls.started",  # to the origin, inside the tunnel
            "connection.start_tls.complete",
        ]
        hostnames = [
            info["server_hostname"] for name, info in events if name == "connection.start_tls.started"
        ]
        assert hostnames == ["127.0.0.1", "localhost"]
        assert AUTH[1] not in repr(events)
        assert r.http_version == b"HTTP/2"
        assert len(r.body) == 1_000_000
        r = await http.request("POST", f"https://localhost:{h2_server.port}/echo_body", body=b"x" * 200_000)
        assert r.body == b"x" * 200_000
        assert len(http.connections) == 1
    assert [head.split(b" ")[0] for head in https_proxy.heads] == [b"CONNECT"]


async def test_tls_in_tls_http1_origin_checks_its_certificate(
    https_proxy: ProxyServer, tls_server: UvicornServer
) -> None:
    proxy = httpcore.Proxy(https_proxy.url, auth=AUTH, ssl_context=tls.client_ssl_context())
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=tls.client_ssl_context()) as http:
        for _ in range(2):
            r = await http.request("GET", f"https://localhost:{tls_server.port}/stream?size=300000")
            assert len(r.body) == 300_000
        assert len(http.connections) == 1
    # The origin's certificate is checked inside the tunnel, against the origin's name.
    async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", f"https://localhost:{tls_server.port}/")


async def test_https_proxy_certificate_is_verified(https_proxy: ProxyServer, server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(proxy=httpcore.Proxy(https_proxy.url, auth=AUTH)) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", server.url)


async def test_connect_refused_with_407_names_status_and_hides_credentials(
    http_proxy: ProxyServer, tls_server: UvicornServer
) -> None:
    proxy = httpcore.Proxy(f"http://proxy-user:wrong-secret@127.0.0.1:{http_proxy.port}")
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=tls.client_ssl_context()) as http:
        events: list[tuple[str, typing.Any]] = []

        async def trace(name: str, info: typing.Any) -> None:
            events.append((name, info))

        with pytest.raises(httpcore.ProxyError, match="407 Proxy Authentication Required") as info:
            await http.request("GET", f"https://localhost:{tls_server.port}/", extensions={"trace": trace})
        assert "wrong-secret" not in str(info.value)
        assert events[-1] == ("connection.proxy_connect.failed", {"exception": info.value})
        assert http.connections == []


async def test_connect_to_unreachable_target_is_proxy_error(http_proxy: ProxyServer) -> None:
    sock = bind_listener("127.0.0.1")
    port = sock.getsockname()[1]
    sock.close()
    async with httpcore.AsyncConnectionPool(proxy=httpcore.Proxy(http_proxy.url, auth=AUTH)) as http:
        with pytest.raises(httpcore.ProxyError, match="502 Bad Gateway"):
            await http.request("GET", f"https://127.0.0.1:{port}/")


async def test_proxy_refusing_connections_is_connect_error() -> None:
    sock = bind_listener("127.0.0.1")
    port = sock.getsockname()[1]
    sock.close()
    events: list[str] = []

    async def trace(name: str, info: typing.Any) -> None:
        events.append(name)

    async with httpcore.AsyncConnectionPool(proxy=f"http://127.0.0.1:{port}", retries=1) as http:
        for url in ("http://example.com/", "https://example.com/"):
            with pytest.raises(httpcore.ConnectError):
                await http.request("GET", url, extensions={"trace": trace})
    assert events.count("connection.retry.started") == 2  # the pool's retries apply to the proxy


async def test_proxy_on_ipv6_loopback(server: UvicornServer, tls_server: UvicornServer) -> None:
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    proxy_server = ProxyServer(auth=AUTH, host="::1").start()
    try:
        proxy = httpcore.Proxy(proxy_server.url, auth=AUTH)
        assert proxy.origin.host == b"::1"
        async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=tls.client_ssl_context()) as http:
            assert (await http.request("GET", server.url)).status_code == 200
            assert (await http.request("GET", f"https://localhost:{tls_server.port}/")).status_code == 200
    finally:
        proxy_server.stop()
    assert proxy_server.connections == 2


async def test_pool_options_apply_to_the_proxy_connection(
    http_proxy: ProxyServer, server: UvicornServer
) -> None:
    import socket

    proxy = httpcore.Proxy(http_proxy.url, auth=AUTH)
    async with httpcore.AsyncConnectionPool(
        proxy=proxy, local_address="127.0.0.1", socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    ) as http:
        r = await http.request("GET", server.url)
        assert r.status_code == 200
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


# -- a raw proxy: what it does after reading the CONNECT request --------------------


def answering(answer: bytes, then_stall: bool = True) -> typing.Callable[[RawConnection], None]:
    def handler(conn: RawConnection) -> None:
        if conn.read_head() is None:
            return
        if answer:
            conn.send(answer)
        if then_stall:
            conn.sleep(10)

    return handler


def silent(conn: RawConnection) -> None:
    conn.sleep(10)


STALLS: dict[str, typing.Callable[[RawConnection], None]] = {
    "says nothing": silent,
    "no answer to CONNECT": answering(b""),
    "half a status line": answering(b"HTTP/1.1 200 Conn"),
    "head without its end": answering(b"HTTP/1.1 200 Connection established\r\nX-A: b\r\n"),
    "200, then no TLS": answering(b"HTTP/1.1 200 Connection established\r\n\r\n"),
    "1xx, then nothing": answering(b"HTTP/1.1 100 Continue\r\n\r\n"),
}


@pytest.mark.parametrize("stall", list(STALLS))
async def test_stalls_end_in_connect_timeout(raw_server: RawServerFactory, stall: str) -> None:
    srv = raw_server(STALLS[stall], timeout=15.0)
    timeout = httpcore.Timeout(5.0, connect=CONNECT_TIMEOUT)
    async with httpcore.AsyncConnectionPool(proxy=srv.url, timeout=timeout) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await http.request("GET", "https://localhost:443/")
        assert time.monotonic() - started < LATE
        assert http.connections == []


async def test_https_proxy_silent_in_its_tls_handshake(raw_server: RawServerFactory) -> None:
    srv = raw_server(silent, timeout=15.0)
    timeout = httpcore.Timeout(5.0, connect=CONNECT_TIMEOUT)
    async with httpcore.AsyncConnectionPool(proxy=f"https://127.0.0.1:{srv.port}", timeout=timeout) as http:
        for url in ("http://localhost/", "https://localhost/"):
            started = time.monotonic()
            with pytest.raises(httpcore.ConnectTimeout):
                await http.request("GET", url)
            assert time.monotonic() - started < LATE


def trickling(data: bytes, read_first: bool) -> typing.Callable[[RawConnection], None]:
    """Sends ``data`` a byte every 50 ms: each read sees progress, only a deadline ends it."""

    def handler(conn: RawConnection) -> None:
        if read_first and conn.read_head() is None:
            return
        conn.recv()  # a TLS ClientHello when not an HTTP request
        conn.send_slowly(data, delay=0.05)
        conn.sleep(10)

    return handler


TRICKLES = {
    "a CONNECT answer": (
        trickling(b"HTTP/1.1 200 Connection established\r\nX-Pad: " + b"a" * 200, True),
        "http",
    ),
    "a TLS handshake": (trickling(b"\x16\x03\x03\x01\x00" + b"\x02" * 256, False), "https"),
}


@pytest.mark.parametrize("case", list(TRICKLES))
async def test_trickling_proxy_ends_in_connect_timeout(raw_server: RawServerFactory, case: str) -> None:
    handler, scheme = TRICKLES[case]
    srv = raw_server(handler, timeout=15.0)
    timeout = httpcore.Timeout(5.0, connect=CONNECT_TIMEOUT)
    async with httpcore.AsyncConnectionPool(
        proxy=f"{scheme}://127.0.0.1:{srv.port}", timeout=timeout
    ) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await http.request("GET", "https://localhost/")
        assert time.monotonic() - started < LATE


@pytest.mark.parametrize("origin", ["silent", "trickling"])
async def test_tls_in_tls_origin_stalling_in_its_handshake(
    https_proxy: ProxyServer, raw_server: RawServerFactory, origin: str
) -> None:
    handler = silent if origin == "silent" else TRICKLES["a TLS handshake"][0]
    srv = raw_server(handler, timeout=15.0)
    proxy = httpcore.Proxy(https_proxy.url, auth=AUTH, ssl_context=tls.client_ssl_context())
    timeout = httpcore.Timeout(5.0, connect=CONNECT_TIMEOUT)
    async with httpcore.AsyncConnectionPool(proxy=proxy, timeout=timeout) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await http.request("GET", f"https://127.0.0.1:{srv.port}/")
        assert time.monotonic() - started < LATE


BAD_ANSWERS: dict[str, tuple[bytes, str]] = {
    "garbage": (b"\x00\x16garbage\r\n\r\n", "invalid answer"),
    "closed": (b"", "closed the connection"),
    "data after 200": (b"HTTP/1.1 200 OK\r\n\r\nsurprise", "sent data before"),
    "403 with a body": (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!", "403 Forbidden"),
    "407 whose body stalls": (
        b"HTTP/1.1 407 Who Are You\r\nContent-Length: 100\r\n\r\npartial",
        "407 Who Are You",
    ),
    "many 1xx": (b"HTTP/1.1 103 Early Hints\r\n\r\n" * 70, "too many informational"),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
async def test_bad_connect_answers_are_proxy_errors(raw_server: RawServerFactory, case: str) -> None:
    answer, message = BAD_ANSWERS[case]
    srv = raw_server(answering(answer, then_stall=case.endswith("stalls")), timeout=15.0)
    timeout = httpcore.Timeout(5.0, connect=CONNECT_TIMEOUT)
    async with httpcore.AsyncConnectionPool(proxy=srv.url, timeout=timeout) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ProxyError, match=message):
            await http.request("GET", "https://localhost/")
        assert time.monotonic() - started < LATE
        assert http.connections == []


async def test_tls_context_objects_are_left_alone(
    https_proxy: ProxyServer, tls_server: UvicornServer
) -> None:
    proxy_context = tls.client_ssl_context()
    proxy = httpcore.Proxy(https_proxy.url, auth=AUTH, ssl_context=proxy_context)
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=tls.client_ssl_context()) as http:
        r = await http.request("GET", f"https://localhost:{tls_server.port}/")
        assert r.status_code == 200
        ssl_object = r.extensions["network_stream"].get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket)
        assert ssl_object.server_hostname == "localhost"
