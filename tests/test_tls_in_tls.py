"""TLS in TLS at the backend level: a stream through an HTTPS proxy's tunnel to a raw
TLS origin, in the blocking and the asyncio backend (both drive an SSLObject by hand)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import typing
from collections.abc import Iterator

import pytest

import httpcore
from httpcore._backends.base import AsyncNetworkStream, NetworkStream
from tests.servers import tls
from tests.servers.asgi_server import HypercornServer
from tests.servers.http_proxy import ProxyServer
from tests.servers.raw import RawConnection, RawServerFactory


@pytest.fixture
def https_proxy() -> Iterator[ProxyServer]:
    proxy = ProxyServer(ssl_context=tls.server_ssl_context()).start()
    yield proxy
    proxy.stop()


def connect_request(port: int) -> bytes:
    return b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (port, port)


def echo_then(end: str) -> typing.Callable[[RawConnection], None]:
    """Echo one message, then end the way the test wants."""

    def handler(conn: RawConnection) -> None:
        data = conn.recv(1024)
        conn.send(data.upper())
        if end == "garbage":  # raw bytes under the TLS layer: the client's TLS must fail
            socket.socket.send(conn.sock, b"\x17\x03\x03\x00\x05oops!")
            conn.sleep(2)
        elif end == "close":
            conn.sleep(1.5)  # the client checks the idle stream meanwhile
            conn.close()

    return handler


def tunnel(proxy: ProxyServer, origin_port: int) -> NetworkStream:
    stream: NetworkStream = httpcore.SyncBackend().connect_tcp("127.0.0.1", proxy.port, 5.0)
    stream = stream.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    stream.write(connect_request(origin_port), 5.0)
    assert stream.read(1024, 5.0).startswith(b"HTTP/1.1 200")
    return stream.start_tls(tls.client_ssl_context(["http/1.1"]), "localhost", 5.0)


async def async_tunnel(proxy: ProxyServer, origin_port: int) -> AsyncNetworkStream:
    stream: AsyncNetworkStream = await httpcore.AsyncioBackend().connect_tcp("127.0.0.1", proxy.port, 5.0)
    stream = await stream.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    await stream.write(connect_request(origin_port), 5.0)
    assert (await stream.read(1024, 5.0)).startswith(b"HTTP/1.1 200")
    return await stream.start_tls(tls.client_ssl_context(["http/1.1"]), "localhost", 5.0)


def test_sync_tls_in_tls(https_proxy: ProxyServer, raw_server: RawServerFactory) -> None:
    origin = raw_server(echo_then("close"), ssl_context=tls.server_ssl_context(["http/1.1"]))
    stream = tunnel(https_proxy, origin.port)
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    assert stream.get_extra_info("server_addr")[1] == https_proxy.port  # the outer socket's
    stream.write(b"hello", 5.0)
    assert stream.read(1024, 5.0) == b"HELLO"
    assert stream.get_extra_info("is_readable") is False  # session tickets were read with the echo
    assert stream.read(1024, 5.0) == b""  # close_notify
    stream.close()


def test_sync_tls_in_tls_garbage_is_read_error(
    https_proxy: ProxyServer, raw_server: RawServerFactory
) -> None:
    origin = raw_server(echo_then("garbage"), ssl_context=tls.server_ssl_context())
    stream = tunnel(https_proxy, origin.port)
    stream.write(b"hello", 5.0)
    assert stream.read(1024, 5.0) == b"HELLO"
    with pytest.raises(httpcore.ReadError):
        stream.read(1024, 5.0)
    with pytest.raises(httpcore.WriteError):
        stream.write(b"more", 5.0)
    stream.close()


def test_sync_tls_in_tls_handshake_failures(https_proxy: ProxyServer, raw_server: RawServerFactory) -> None:
    silent = raw_server(lambda conn: conn.sleep(10), timeout=15.0)
    stream: NetworkStream = httpcore.SyncBackend().connect_tcp("127.0.0.1", https_proxy.port, 5.0)
    stream = stream.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    stream.write(connect_request(silent.port), 5.0)
    stream.read(1024, 5.0)
    with pytest.raises(httpcore.ConnectTimeout):
        stream.start_tls(tls.client_ssl_context(), "localhost", 0.3)
    origin = raw_server(echo_then("close"), ssl_context=tls.server_ssl_context())
    with pytest.raises(httpcore.ConnectError):  # the default context does not trust the test CA
        outer: NetworkStream = httpcore.SyncBackend().connect_tcp("127.0.0.1", https_proxy.port, 5.0)
        outer = outer.start_tls(tls.client_ssl_context(), "localhost", 5.0)
        outer.write(connect_request(origin.port), 5.0)
        outer.read(1024, 5.0)
        outer.start_tls(httpcore.default_ssl_context(), "localhost", 5.0)


async def test_async_tls_in_tls(https_proxy: ProxyServer, raw_server: RawServerFactory) -> None:
    origin = raw_server(echo_then("close"), ssl_context=tls.server_ssl_context(["http/1.1"]))
    stream = await async_tunnel(https_proxy, origin.port)
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    assert stream.get_extra_info("server_addr")[1] == https_proxy.port
    await stream.write(b"hello", 5.0)
    assert await stream.read(1024, 5.0) == b"HELLO"
    assert stream.get_extra_info("is_readable") is False  # session tickets were read with the echo
    assert await stream.read(1024, 5.0) == b""
    await stream.aclose()


async def test_async_tls_in_tls_garbage_is_read_error(
    https_proxy: ProxyServer, raw_server: RawServerFactory
) -> None:
    origin = raw_server(echo_then("garbage"), ssl_context=tls.server_ssl_context())
    stream = await async_tunnel(https_proxy, origin.port)
    await stream.write(b"hello", 5.0)
    assert await stream.read(1024, 5.0) == b"HELLO"
    with pytest.raises(httpcore.ReadError):
        await stream.read(1024, 5.0)
    with pytest.raises(httpcore.WriteError):
        await stream.write(b"more", 5.0)
    await stream.aclose()


async def test_async_tls_in_tls_handshake_failures(
    https_proxy: ProxyServer, raw_server: RawServerFactory
) -> None:
    silent = raw_server(lambda conn: conn.sleep(10), timeout=15.0)

    async def outer() -> AsyncNetworkStream:
        stream: AsyncNetworkStream = await httpcore.AsyncioBackend().connect_tcp(
            "127.0.0.1", https_proxy.port, 5.0
        )
        stream = await stream.start_tls(tls.client_ssl_context(), "localhost", 5.0)
        await stream.write(connect_request(silent.port), 5.0)
        await stream.read(1024, 5.0)
        return stream

    with pytest.raises(httpcore.ConnectTimeout):
        await (await outer()).start_tls(tls.client_ssl_context(), "localhost", 0.3)
    stream = await outer()
    with pytest.raises(asyncio.TimeoutError):  # cancelled mid-handshake: the stream is closed
        await asyncio.wait_for(stream.start_tls(tls.client_ssl_context(), "localhost", None), 0.3)
    with pytest.raises(httpcore.ReadError):
        await stream.read(1024, 1.0)
    origin = raw_server(echo_then("close"), ssl_context=tls.server_ssl_context())
    other: AsyncNetworkStream = await httpcore.AsyncioBackend().connect_tcp(
        "127.0.0.1", https_proxy.port, 5.0
    )
    other = await other.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    await other.write(connect_request(origin.port), 5.0)
    await other.read(1024, 5.0)
    with pytest.raises(httpcore.ConnectError):  # the default context does not trust the test CA
        await other.start_tls(httpcore.default_ssl_context(), "localhost", 5.0)


def test_sync_http2_through_an_https_proxy_from_many_threads(
    https_proxy: ProxyServer, h2_server: HypercornServer
) -> None:
    # One HTTP/2 connection inside TLS inside TLS, its streams read and written by
    # several threads at once: neither session is ever used by two at a time. (The
    # outer one, an SSLSocket, was: it lost the connection in about one run in ten.)
    proxy = httpcore.Proxy(https_proxy.url, ssl_context=tls.client_ssl_context())
    url = f"https://localhost:{h2_server.port}/echo_body"
    with httpcore.ConnectionPool(proxy=proxy, ssl_context=tls.client_ssl_context(), http2=True) as http:
        assert http.request("GET", f"https://localhost:{h2_server.port}/").http_version == b"HTTP/2"

        def work(n: int) -> None:
            for i in range(10):
                body = b"%d-%d-" % (n, i) * 5000
                assert http.request("POST", url, body=body).body == body

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(work, n) for n in range(8)]:
                future.result(timeout=20)
        assert len(http.connections) == 1
