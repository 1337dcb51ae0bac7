"""The pool: limits, timeouts, keep-alive, retries, TLS, close; against real loopback servers."""

from __future__ import annotations

import ssl
import typing

import pytest

import httpcore
from tests.servers.asgi_server import UvicornServer
from tests.servers.netutil import bind_listener
from tests.servers.raw import RawConnection, RawServerFactory, keep_alive, ok, per_connection, scripted


def closed_port() -> int:
    sock = bind_listener("127.0.0.1")
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def test_connect_error_on_closed_port() -> None:
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", f"http://127.0.0.1:{closed_port()}/")
        assert http.connections == []


async def test_connect_retries(raw_server: RawServerFactory) -> None:
    port = closed_port()
    async with httpcore.AsyncConnectionPool(retries=2) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", f"http://127.0.0.1:{port}/")


async def test_unresolvable_host_is_connect_error() -> None:
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", "http://name.invalid/", timeout=5.0)


async def test_pool_read_timeout(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(timeout=httpcore.Timeout(5.0, read=0.2)) as http:
        with pytest.raises(httpcore.ReadTimeout):
            await http.request("GET", server.url + "/slow_headers?delay=2")
        assert http.connections == []
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200


async def test_per_request_read_timeout(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.ReadTimeout):
            await http.request("GET", server.url + "/slow_headers?delay=2", timeout=0.2)
        with pytest.raises(httpcore.ReadTimeout):
            await http.request(
                "GET",
                server.url + "/slow_headers?delay=2",
                extensions={"timeout": {"connect": 1.0, "read": 0.2, "write": 1.0, "pool": 1.0}},
            )
        async with http.stream("GET", server.url + "/slow_body?delay=2", timeout={"read": 0.2}) as r:
            with pytest.raises(httpcore.ReadTimeout):
                async for _ in r.stream():
                    pass
        r = await http.request("GET", server.url + "/", timeout=None)
        assert r.status_code == 200


async def test_write_timeout(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.sleep(3)  # never reads: the upload fills the socket buffers

    srv = raw_server(handler)
    async with httpcore.AsyncConnectionPool(timeout=httpcore.Timeout(5.0, write=0.3)) as http:
        with pytest.raises(httpcore.WriteTimeout):
            await http.request("POST", srv.url + "/", body=b"x" * (64 * 1024 * 1024))
        assert http.connections == []


async def test_connect_timeout() -> None:
    # A listener with a full backlog that never accepts: further connects hang in SYN_SENT.
    listener = bind_listener("127.0.0.1", backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        import socket

        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        async with httpcore.AsyncConnectionPool(timeout=httpcore.Timeout(5.0, connect=0.3)) as http:
            with pytest.raises((httpcore.ConnectTimeout, httpcore.ConnectError)):
                await http.request("GET", f"http://127.0.0.1:{port}/")
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_pool_timeout(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(
        max_connections=1, timeout=httpcore.Timeout(5.0, pool=0.2)
    ) as http:
        r = await http.request("GET", server.url + "/", stream=True)
        with pytest.raises(httpcore.PoolTimeout):
            await http.request("GET", server.url + "/")
        await r.aclose()
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        assert len(http.connections) == 1


async def test_waiter_gets_released_connection(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=1) as http:
        r = await http.request("GET", server.url + "/", stream=True)
        await r.aread()
        r2 = await http.request("GET", server.url + "/")
        assert r2.status_code == 200
        assert len(http.connections) == 1


async def test_keepalive_expiry(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(keepalive_expiry=0.0) as http:
        await http.request("GET", server.url + "/")
        first = http.connections[0]
        await http.request("GET", server.url + "/")
        assert http.connections[0] is not first
        assert first.is_closed()


async def test_max_keepalive_connections(server: UvicornServer) -> None:
    limits = httpcore.Limits(max_connections=4, max_keepalive_connections=1)
    async with httpcore.AsyncConnectionPool(limits=limits) as http:
        responses = [await http.request("GET", server.url + "/", stream=True) for _ in range(3)]
        assert len(http.connections) == 3
        for r in responses:
            await r.aread()
        assert len(http.connections) == 1


async def test_idle_connection_evicted_for_other_origin(
    server: UvicornServer, raw_server: RawServerFactory
) -> None:
    srv = raw_server(keep_alive(ok()))
    async with httpcore.AsyncConnectionPool(max_connections=1) as http:
        await http.request("GET", server.url + "/")
        await http.request("GET", srv.url + "/")
        assert [c.origin.port for c in http.connections] == [srv.port]
        await http.request("GET", server.url + "/")
        assert [c.origin.port for c in http.connections] == [server.port]


async def test_server_closed_idle_connection_is_replaced(raw_server: RawServerFactory) -> None:
    def answer_once(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(ok(b"first"))
        conn.sleep(0.1)
        conn.close()

    srv = raw_server(per_connection(answer_once, keep_alive(ok(b"second"))))
    async with httpcore.AsyncConnectionPool() as http:
        assert (await http.request("GET", srv.url + "/")).body == b"first"
        assert srv.wait_for_connections(1)
        import time

        time.sleep(0.3)
        assert (await http.request("GET", srv.url + "/")).body == b"second"
    assert srv.connections_accepted == 2


def drop_after_first_then_serve(body: bytes) -> typing.Callable[[RawConnection], None]:
    """The first connection answers once, then closes as soon as the next request arrives,
    without a response: what a keep-alive connection looks like when the server timed it out."""

    def first(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(ok(b"first"))
        conn.read_request()
        conn.close()

    return per_connection(first, keep_alive(ok(body)))


async def test_stale_connection_retried_for_idempotent_request(raw_server: RawServerFactory) -> None:
    srv = raw_server(drop_after_first_then_serve(b"retried"))
    async with httpcore.AsyncConnectionPool() as http:
        assert (await http.request("GET", srv.url + "/")).body == b"first"
        conn = typing.cast(typing.Any, http.connections[0])
        conn._connection._stream.is_readable = lambda: False  # hide the close from the checkout
        assert (await http.request("GET", srv.url + "/")).body == b"retried"
    assert srv.connections_accepted == 2


@pytest.mark.parametrize(
    ("method", "body", "reason"),
    [("POST", b"data", "not idempotent"), ("PUT", [b"streamed"], "cannot be sent again")],
)
async def test_stale_connection_not_retried(
    raw_server: RawServerFactory, method: str, body: typing.Any, reason: str
) -> None:
    srv = raw_server(drop_after_first_then_serve(b"never"))
    async with httpcore.AsyncConnectionPool() as http:
        await http.request("GET", srv.url + "/")
        conn = typing.cast(typing.Any, http.connections[0])
        conn._connection._stream.is_readable = lambda: False
        with pytest.raises(httpcore.RemoteProtocolError, match=reason):
            await http.request(method, srv.url + "/", body=body)
        assert (await http.request("GET", srv.url + "/")).body == b"never"


async def test_garbage_then_pool_still_usable(raw_server: RawServerFactory) -> None:
    srv = raw_server(per_connection(scripted(b"NOT HTTP AT ALL\r\n\r\n"), keep_alive(ok(b"good"))))
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.RemoteProtocolError):
            await http.request("GET", srv.url + "/")
        assert http.connections == []
        assert (await http.request("GET", srv.url + "/")).body == b"good"


async def test_truncated_body_then_pool_still_usable(raw_server: RawServerFactory) -> None:
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a bit"
    srv = raw_server(per_connection(scripted(truncated), keep_alive(ok(b"good"))))
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.RemoteProtocolError):
            await http.request("GET", srv.url + "/")
        assert http.connections == []
        assert (await http.request("GET", srv.url + "/")).body == b"good"


async def test_header_injection_refused_before_sending(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok()))
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.LocalProtocolError):
            await http.request("GET", srv.url + "/", headers=[("X-A", "1\r\nX-Injected: 2")])
        with pytest.raises(httpcore.LocalProtocolError):
            await http.request("GET", srv.url + "/\r\nX-Injected: 2")
        with pytest.raises(httpcore.LocalProtocolError):
            await http.request("GET\r\n", srv.url + "/")
    assert srv.requests == []


async def test_content_length_mismatch_is_local_error(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok()))
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.LocalProtocolError):
            await http.request("POST", srv.url + "/", headers=[("Content-Length", "10")], body=b"short")
        assert http.connections == []
    assert srv.requests == []


async def test_use_after_close(server: UvicornServer) -> None:
    http = httpcore.AsyncConnectionPool()
    await http.request("GET", server.url + "/")
    await http.aclose()
    assert http.connections == []
    with pytest.raises(httpcore.PoolClosed):
        await http.request("GET", server.url + "/")
    with pytest.raises(RuntimeError):
        await http.request("GET", server.url + "/")


async def test_close_with_response_open(server: UvicornServer) -> None:
    http = httpcore.AsyncConnectionPool()
    r = await http.request("GET", server.url + "/stream?size=10000000", stream=True)
    await http.aclose()
    with pytest.raises(httpcore.ReadError):
        async for _ in r.stream():
            pass
    await r.aclose()


async def test_tls_verified_by_default(tls_server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.request("GET", tls_server.url + "/")
        assert http.connections == []


async def test_tls_with_custom_context(tls_server: UvicornServer, client_ssl_context: ssl.SSLContext) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context) as http:
        for _ in range(3):
            r = await http.request("GET", tls_server.url + "/")
            assert r.body == b"Hello, world!"
        assert len(http.connections) == 1
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").version().startswith("TLS")


async def test_tls_hostname_checked(tls_server: UvicornServer, client_ssl_context: ssl.SSLContext) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context) as http:
        with pytest.raises(httpcore.ConnectError, match=r"match|mismatch"):
            await http.request("GET", tls_server.url + "/", extensions={"sni_hostname": "wrong.example"})
        r = await http.request("GET", f"https://localhost:{tls_server.port}/")
        assert r.status_code == 200


async def test_tls_to_plain_server_fails_cleanly(
    server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", f"https://127.0.0.1:{server.port}/")


async def test_options_validated() -> None:
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.AsyncConnectionPool(http1=False, http2=False)
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.AsyncConnectionPool(proxy="ftp://127.0.0.1:3128")
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.AsyncHTTPConnection(httpcore.Origin(b"http", b"h", 80), http1=False, http2=False)


async def test_pool_repr_and_limits_kwargs(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(
        max_connections=3, max_keepalive_connections=2, keepalive_expiry=1.0
    ) as http:
        await http.request("GET", server.url + "/")
        assert "connections: 1" in repr(http)
        assert "idle: 1" in repr(http)
