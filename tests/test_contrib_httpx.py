"""httpcore.contrib.httpx: our transports under real httpx 0.28 and httpx2 2.x clients.

Every test runs with both libraries (``lib``), sync and async, against the loopback
servers; what httpx2 checks of a transport (its own stream classes, the http_version and
reason_phrase extensions, an SSLContext as ``verify``, ``uds``, the trace extension, the
errors of its core on a 101 network stream) is asserted explicitly.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import ssl
import threading
import types
import typing

import pytest

import httpcore
from httpcore.contrib import httpx as contrib
from httpcore.contrib.httpx import AsyncHTTPTransport, HTTPTransport
from tests.conftest import PROXY_AUTH
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory
from tests.servers.tinyproxy import TinyProxy

httpx = pytest.importorskip("httpx")
httpx2: typing.Any
httpcore2: typing.Any
try:
    httpx2 = importlib.import_module("httpx2")
    httpcore2 = importlib.import_module("httpcore2")
except ImportError:  # httpx2 needs Python 3.11: where it is missing, httpx alone is tested
    httpx2 = httpcore2 = None
LIBRARIES = [module for module in (httpx, httpx2) if module]
needs_httpx2 = pytest.mark.skipif(not httpx2, reason="httpx2 is not installed (it needs Python 3.11)")


@pytest.fixture(params=LIBRARIES, ids=lambda module: module.__name__)
def lib(request: pytest.FixtureRequest) -> types.ModuleType:
    module: types.ModuleType = request.param
    return module


def test_get_post_and_stream_sync(lib: types.ModuleType, server: UvicornServer) -> None:
    with lib.Client(transport=HTTPTransport()) as client:
        r = client.get(server.url + "/")
        assert (r.status_code, r.text, r.http_version, r.reason_phrase) == (
            200,
            "Hello, world!",
            "HTTP/1.1",
            "OK",
        )
        assert r.extensions["http_version"] == b"HTTP/1.1" and r.extensions["reason_phrase"] == b"OK"
        assert isinstance(r, lib.Response)
        assert client.post(server.url + "/echo_body", content=b"abc").content == b"abc"
        upload = client.post(server.url + "/echo_body", content=iter([b"x" * 70_000, b"y"]))
        assert upload.content == b"x" * 70_000 + b"y"
        with client.stream("GET", server.url + "/stream?size=300000&chunk=65536") as r:
            assert isinstance(r.stream, lib.SyncByteStream)
            assert sum(len(chunk) for chunk in r.iter_raw()) == 300_000


async def test_get_post_and_stream_async(lib: types.ModuleType, server: UvicornServer) -> None:
    async def body() -> typing.AsyncIterator[bytes]:
        yield b"x" * 70_000
        yield b"y"

    async with lib.AsyncClient(transport=AsyncHTTPTransport()) as client:
        r = await client.get(server.url + "/")
        assert (r.status_code, r.text, r.http_version, r.reason_phrase) == (
            200,
            "Hello, world!",
            "HTTP/1.1",
            "OK",
        )
        upload = await client.post(server.url + "/echo_body", content=body())
        assert upload.content == b"x" * 70_000 + b"y"
        async with client.stream("GET", server.url + "/stream?size=300000&chunk=65536") as r:
            assert isinstance(r.stream, lib.AsyncByteStream)
            total = 0
            async for chunk in r.aiter_raw():
                total += len(chunk)
            assert total == 300_000
        # Several at once share the pool's connections.
        results = await asyncio.gather(*[client.get(server.url + "/") for _ in range(20)])
        assert {r.status_code for r in results} == {200}


def test_connections_are_reused_and_released(lib: types.ModuleType, server: UvicornServer) -> None:
    transport = HTTPTransport()
    with lib.Client(transport=transport) as client:
        for _ in range(3):
            assert client.get(server.url + "/").status_code == 200
        with client.stream("GET", server.url + "/") as r:
            r.read()
        assert transport._pool is not None and len(transport._pool.connections) == 1


def test_connect_and_read_errors_are_the_librarys(lib: types.ModuleType, server: UvicornServer) -> None:
    with lib.Client(transport=HTTPTransport(retries=0)) as client:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()  # nothing listens there: refused
        with pytest.raises(lib.ConnectError) as info:
            client.get(f"http://127.0.0.1:{port}/")
        assert isinstance(info.value.__cause__, httpcore.ConnectError)
        assert info.value.request.url.port == port
        with pytest.raises(lib.ReadTimeout):
            client.get(server.url + "/slow_headers?delay=1", timeout=lib.Timeout(5.0, read=0.05))


async def test_errors_while_the_body_streams(lib: types.ModuleType, raw_server: RawServerFactory) -> None:
    def cut_short(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)

    srv = raw_server(cut_short)
    client = lib.AsyncClient(transport=AsyncHTTPTransport())
    async with client, client.stream("GET", srv.url + "/") as r:
        with pytest.raises(lib.RemoteProtocolError):
            await r.aread()


def test_pool_timeout(lib: types.ModuleType, server: UvicornServer) -> None:
    transport = HTTPTransport(limits=lib.Limits(max_connections=1))
    client = lib.Client(transport=transport, timeout=lib.Timeout(5.0, pool=0.05))
    with client, client.stream("GET", server.url + "/"), pytest.raises(lib.PoolTimeout):
        client.get(server.url + "/")


@needs_httpx2
def test_error_table_maps_to_existing_classes_most_specific_first() -> None:
    for module in (httpx, httpx2):
        mapped = contrib._mapper(module, contrib._ERRORS)
        for ours, theirs in contrib._ERRORS.items():
            assert issubclass(getattr(module, theirs), module.TransportError)
            assert type(mapped(ours("x"))) is getattr(module, theirs)
        stale = mapped(httpcore._exceptions.StaleConnection("gone"))  # a RemoteProtocolError
        assert type(stale) is module.RemoteProtocolError and str(stale) == "gone"
    core = contrib._mapper(httpcore2, contrib._CORE_ERRORS)
    assert type(core(httpcore.WriteError("w"))) is httpcore2.WriteError
    assert type(core(httpcore.RemoteProtocolError("r"))) is httpcore2.NetworkError


def test_verify_takes_an_ssl_context_and_defaults_to_verifying(
    lib: types.ModuleType, tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    with lib.Client(transport=HTTPTransport(verify=client_ssl_context)) as client:
        assert client.get(tls_server.url + "/").text == "Hello, world!"
    with lib.Client(transport=HTTPTransport(verify=False)) as client:
        assert client.get(tls_server.url + "/").status_code == 200
    untrusted = pytest.raises(lib.ConnectError, match="CERTIFICATE_VERIFY_FAILED")
    with lib.Client(transport=HTTPTransport()) as client, untrusted:  # the test CA is not trusted
        client.get(tls_server.url + "/")


async def test_http2(
    lib: types.ModuleType, h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    transport = AsyncHTTPTransport(verify=client_ssl_context, http2=True)
    async with lib.AsyncClient(transport=transport) as client:
        r = await client.get(h2_server.url + "/")
        assert (r.http_version, r.text, r.extensions["reason_phrase"]) == ("HTTP/2", "Hello, world!", b"")


def test_uds(lib: types.ModuleType, tmp_path: typing.Any) -> None:
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nvia uds")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with lib.Client(transport=HTTPTransport(uds=path)) as client:
            assert client.get("http://localhost/").text == "via uds"
    finally:
        thread.join(5)
        listener.close()


def test_expect_100_continue(lib: types.ModuleType, server: UvicornServer) -> None:
    with lib.Client(transport=HTTPTransport()) as client:
        r = client.post(server.url + "/echo_body", content=b"payload", headers={"Expect": "100-continue"})
        assert (r.status_code, r.content) == (200, b"payload")


async def test_trace_extension_through_the_client(lib: types.ModuleType, server: UvicornServer) -> None:
    seen: list[tuple[str, dict[str, typing.Any]]] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        seen.append((name, info))

    async with lib.AsyncClient(transport=AsyncHTTPTransport()) as client:
        await client.get(server.url + "/", extensions={"trace": trace})
    names = [name for name, _ in seen]
    assert names[:2] == ["connection.connect_tcp.started", "connection.connect_tcp.complete"]
    head = dict(seen)["http11.receive_response_headers.complete"]["return_value"]
    http_version, status, reason, headers = head
    assert (http_version, status, reason) == (b"HTTP/1.1", 200, b"OK")
    assert (b"content-type", b"text/plain") in headers
    assert names[-1] == "http11.response_closed.complete"


def test_http_proxy(lib: types.ModuleType, tinyproxy_auth: TinyProxy, server: UvicornServer) -> None:
    proxy = lib.Proxy(tinyproxy_auth.url, auth=PROXY_AUTH)
    with lib.Client(transport=HTTPTransport(proxy=proxy)) as client:
        assert client.get(server.url + "/").text == "Hello, world!"
    with lib.Client(transport=HTTPTransport(proxy=tinyproxy_auth.url)) as client:
        assert client.get(server.url + "/").status_code == 407  # no credentials given


SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"


def echo_after_switch(conn: RawConnection) -> None:
    conn.read_head()
    conn.send(SWITCH + b"hi")
    conn.send(b"echo:" + conn.recv(4))
    conn.sleep(1.0)


async def test_websocket_network_stream_raises_the_cores_errors(
    lib: types.ModuleType, raw_server: RawServerFactory
) -> None:
    srv = raw_server(echo_after_switch)
    headers = {"Upgrade": "echo", "Connection": "Upgrade"}
    core = httpcore2 if lib is httpx2 else httpcore  # httpx runs on this package as httpcore
    client = lib.AsyncClient(transport=AsyncHTTPTransport())
    async with client, client.stream("GET", srv.url + "/", headers=headers) as r:
        assert r.status_code == 101
        stream = r.extensions["network_stream"]
        assert await stream.read(100) == b"hi"
        await stream.write(b"ping")
        assert await stream.read(100) == b"echo:ping"
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
        with pytest.raises(core.ReadTimeout):
            await stream.read(100, timeout=0.05)
        await stream.aclose()
        with pytest.raises((core.ReadError, core.WriteError)):
            await stream.write(b"after close")


def test_websocket_network_stream_sync(lib: types.ModuleType, raw_server: RawServerFactory) -> None:
    srv = raw_server(echo_after_switch)
    core = httpcore2 if lib is httpx2 else httpcore
    client = lib.Client(transport=HTTPTransport())
    headers = {"Upgrade": "echo", "Connection": "Upgrade"}
    with client, client.stream("GET", srv.url + "/", headers=headers) as r:
        stream = r.extensions["network_stream"]
        assert stream.read(100) == b"hi"
        stream.write(b"ping")
        assert stream.read(100) == b"echo:ping"
        with pytest.raises(core.ReadTimeout):
            stream.read(100, timeout=0.05)
        assert stream.get_extra_info("server_addr")[1] == httpcore.URL(srv.url).port
        stream.close()
        with pytest.raises((core.ReadError, core.WriteError)):
            stream.write(b"after close")


def test_closed_transport_refuses(lib: types.ModuleType, server: UvicornServer) -> None:
    transport = HTTPTransport()
    transport.close()  # before any request: nothing was opened
    request = lib.Request("GET", server.url + "/")
    with pytest.raises(lib.TransportError, match="closed"):
        transport.handle_request(request)


async def test_closed_async_transport_refuses(lib: types.ModuleType, server: UvicornServer) -> None:
    async with AsyncHTTPTransport() as transport:
        response = await transport.handle_async_request(lib.Request("GET", server.url + "/"))
        assert await response.aread() == b"Hello, world!"
    with pytest.raises(lib.TransportError, match="closed"):
        await transport.handle_async_request(lib.Request("GET", server.url + "/"))


def test_a_request_of_another_library_is_refused() -> None:
    with HTTPTransport() as transport, pytest.raises(TypeError, match="httpx or httpx2 Request"):
        transport.handle_request(httpcore.Request("GET", "http://127.0.0.1/"))


def test_request_subclasses_and_explicit_byte_streams(lib: types.ModuleType, server: UvicornServer) -> None:
    class MyRequest(lib.Request):  # type: ignore[misc,name-defined]
        pass

    with HTTPTransport() as transport:
        request = MyRequest("POST", server.url + "/echo_body", stream=lib.ByteStream(b"explicit"))
        response = transport.handle_request(request)
        assert response.read() == b"explicit"


def test_constructor_arguments_checked_at_once(lib: types.ModuleType) -> None:
    with pytest.raises(httpcore.UnsupportedProtocol):
        HTTPTransport(http1=False, http2=False)
    with pytest.raises(httpcore.UnsupportedProtocol):
        AsyncHTTPTransport(proxy="ftp://127.0.0.1:21")
    transport = AsyncHTTPTransport(proxy=lib.URL("socks5://127.0.0.1:1080"), local_address="127.0.0.1")
    assert transport._options.pool["proxy"].scheme == b"socks5"


def test_under_trio(lib: types.ModuleType, server: UvicornServer, raw_server: RawServerFactory) -> None:
    # httpx2 runs its async tests under trio as well as asyncio: the same transport serves both.
    trio = pytest.importorskip("trio")
    srv = raw_server(echo_after_switch)
    core = httpcore2 if lib is httpx2 else httpcore
    statuses: list[int] = []

    async def get(client: typing.Any) -> None:
        statuses.append((await client.get(server.url + "/")).status_code)

    async def main() -> None:
        async with lib.AsyncClient(transport=AsyncHTTPTransport()) as client:
            assert (await client.get(server.url + "/")).text == "Hello, world!"
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(get, client)
            headers = {"Upgrade": "echo", "Connection": "Upgrade"}
            async with client.stream("GET", srv.url + "/", headers=headers) as r:
                stream = r.extensions["network_stream"]
                assert await stream.read(100) == b"hi"
                await stream.write(b"ping")
                assert await stream.read(100) == b"echo:ping"
                with pytest.raises(core.ReadTimeout):
                    await stream.read(100, timeout=0.05)

    trio.run(main)  # bounded by the test's timeout
    assert statuses == [200] * 10
