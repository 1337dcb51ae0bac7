"""Tests of the ASGI gateway in ``examples/gateway.py``, the showcase of the library.

End-to-end tests run the gateway under uvicorn (in a thread, with lifespan events, so
the pool is created and closed the way it is in production) in front of the session's
upstream ``server`` and talk to it with httpcore. The failure paths that depend on
timing (a client leaving mid-transfer, an upstream breaking mid-body) call the ASGI app
directly with scripted ``receive``/``send`` callables instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

import httpcore
from examples import gateway as gateway_module
from examples.gateway import ClientRequest, GatewayServer, Message, Scope
from tests.servers.app import pattern
from tests.servers.asgi_server import UvicornServer
from tests.servers.netutil import bind_listener, format_url
from tests.servers.raw import RawConnection, RawServerFactory


@contextmanager
def serve(gateway: GatewayServer) -> Iterator[str]:
    """Run ``gateway`` under uvicorn with lifespan events; yield its base URL."""
    srv = UvicornServer(app=gateway)
    srv.server.config.lifespan = "on"
    with srv:
        yield srv.url
    assert gateway._pool is None, "lifespan shutdown closes the pool"


@pytest.fixture(scope="module")
def gateway_url(server: UvicornServer) -> Iterator[str]:
    with serve(GatewayServer(server.url)) as url:
        yield url


def dead_url() -> str:
    """The URL of a loopback port nothing listens on."""
    sock = bind_listener("127.0.0.1")
    port = sock.getsockname()[1]
    sock.close()
    return format_url("http", "127.0.0.1", port)


def header(response: httpcore.Response, name: bytes) -> list[bytes]:
    return [value for key, value in response.headers if key.lower() == name]


def http_scope(path: str = "/", method: str = "GET", headers: Sequence[tuple[bytes, bytes]] = ()) -> Scope:
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"gateway.test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Client:
    """Scripted ASGI ``receive``/``send``: ``receive`` replays ``messages``, then
    blocks until ``leave()`` and reports a disconnect; ``send`` records messages."""

    def __init__(self, *messages: Message) -> None:
        self.messages = list(messages) or [{"type": "http.request", "body": b"", "more_body": False}]
        self.sent: list[Message] = []
        self.gone = asyncio.Event()
        self.leave_after_body = False

    def leave(self) -> None:
        self.gone.set()

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if self.leave_after_body and message["type"] == "http.response.body" and message["body"]:
            self.leave()

    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]


# -- end to end, through uvicorn -----------------------------------------------------


async def test_get(gateway_url: str) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        response = await http.request("GET", gateway_url + "/")
    assert response.status_code == 200
    assert response.body == b"Hello, world!"
    assert header(response, b"content-type") == [b"text/plain"]


def test_get_sync(gateway_url: str) -> None:
    with httpcore.ConnectionPool() as http:
        response = http.request("GET", gateway_url + "/status/404")
    assert (response.status_code, response.body) == (404, b"status")


async def test_request_forwarded_without_hop_by_hop_headers(gateway_url: str, server: UvicornServer) -> None:
    headers = [
        (b"Connection", b"keep-alive, X-Drop-Me"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"TE", b"trailers"),
        (b"Trailer", b"x-checksum"),
        (b"X-Drop-Me", b"1"),
        (b"X-Custom", b"kept"),
    ]
    async with httpcore.AsyncConnectionPool() as http:
        response = await http.request("PUT", gateway_url + "/echo_headers?a=1&b=%20x", headers=headers)
    seen = json.loads(response.body)
    names = [name.lower() for name, _ in seen["headers"]]
    upstream_host = server.url.removeprefix("http://")
    assert seen["method"] == "PUT"
    assert seen["path"] == "/echo_headers"
    assert seen["query_string"] == "a=1&b=%20x"
    assert [value for name, value in seen["headers"] if name.lower() == "host"] == [upstream_host]
    assert ["x-custom", "kept"] in seen["headers"]
    assert ["x-forwarded-for", "127.0.0.1"] in seen["headers"]
    for name in ("keep-alive", "proxy-connection", "te", "trailer", "x-drop-me"):
        assert name not in names
    # The gateway's own connection to the upstream may say keep-alive, never the client's words.
    assert all(
        value.lower() == "keep-alive" for name, value in seen["headers"] if name.lower() == "connection"
    )


async def test_response_without_hop_by_hop_headers(gateway_url: str) -> None:
    query = "Connection=x-secret&X-Secret=1&Keep-Alive=timeout%3D5&Proxy-Connection=x&Trailer=x-t&X-Kept=yes"
    async with httpcore.AsyncConnectionPool() as http:
        response = await http.request("GET", f"{gateway_url}/headers_out?{query}")
    names = [name.lower() for name, _ in response.headers]
    assert response.status_code == 200
    assert header(response, b"x-kept") == [b"yes"]
    for name in (b"x-secret", b"keep-alive", b"proxy-connection", b"trailer"):
        assert name not in names
    assert names.count(b"date") == 1, "the upstream's Date is replaced by the gateway server's"


async def test_streamed_upload(gateway_url: str) -> None:
    data = bytes(range(256)) * (4 * 1024 * 1024 // 256)

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(0, len(data), 65536):
            yield data[offset : offset + 65536]

    async with httpcore.AsyncConnectionPool() as http:
        response = await http.request("POST", gateway_url + "/upload", body=chunks())
    seen = json.loads(response.body)
    assert response.status_code == 200
    assert seen["length"] == len(data)
    assert seen["sha256"] == hashlib.sha256(data).hexdigest()
    assert seen["chunks"] > 1, "the body reached the upstream as a stream"


def test_small_body(gateway_url: str) -> None:
    with httpcore.ConnectionPool() as http:
        response = http.request("POST", gateway_url + "/echo_body", body=b"hello")
    assert (response.status_code, response.body) == (200, b"hello")


@pytest.mark.parametrize("endpoint", ["stream", "fixed"])
async def test_streamed_download(gateway_url: str, endpoint: str) -> None:
    size = 8 * 1024 * 1024
    digest, received, chunks = hashlib.sha256(), 0, 0
    async with (
        httpcore.AsyncConnectionPool() as http,
        http.stream("GET", f"{gateway_url}/{endpoint}?size={size}") as response,
    ):
        async for chunk in response.stream():
            digest.update(chunk)
            received += len(chunk)
            chunks += 1
    assert response.status_code == 200
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(pattern(size)).hexdigest()
    assert chunks > 1
    if endpoint == "fixed":
        assert header(response, b"content-length") == [b"%d" % size]
    else:
        assert header(response, b"transfer-encoding") == [b"chunked"]


def test_head(gateway_url: str) -> None:
    with httpcore.ConnectionPool() as http:
        response = http.request("HEAD", gateway_url + "/fixed?size=1000")
    assert response.status_code == 200
    assert header(response, b"content-length") == [b"1000"]
    assert response.body == b""


def test_upstream_down_is_502() -> None:
    with serve(GatewayServer(dead_url())) as url, httpcore.ConnectionPool() as http:
        response = http.request("GET", url + "/")
    assert response.status_code == 502
    assert response.body.startswith(b"Bad Gateway: ConnectError")
    assert header(response, b"content-type") == [b"text/plain; charset=utf-8"]


def test_upstream_timeout_is_504(server: UvicornServer) -> None:
    gateway = GatewayServer(server.url, timeout=httpcore.Timeout(1.0, read=0.1))
    with serve(gateway) as url, httpcore.ConnectionPool() as http:
        response = http.request("GET", url + "/slow_headers?delay=0.5")
    assert response.status_code == 504
    assert response.body.startswith(b"Gateway Timeout: ReadTimeout")


# -- the ASGI app called directly ----------------------------------------------------


async def test_pool_created_lazily_without_lifespan(server: UvicornServer) -> None:
    gateway = GatewayServer(server.url)
    assert gateway._pool is None
    client = Client()
    await gateway(http_scope("/"), client.receive, client.send)
    assert client.sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in client.sent[1:]) == b"Hello, world!"
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    pool = gateway.pool
    assert len(pool.connections) == 1, "the upstream connection is kept alive"
    await gateway(http_scope("/"), Client().receive, Client().send)
    assert gateway.pool is pool and len(pool.connections) == 1
    await gateway.aclose()
    assert gateway._pool is None


async def test_lifespan() -> None:
    gateway = GatewayServer("http://127.0.0.1:1")
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []
    pools: list[httpcore.AsyncConnectionPool | None] = []

    async def receive() -> Message:
        return events.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)
        pools.append(gateway._pool)

    await gateway({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert isinstance(pools[0], httpcore.AsyncConnectionPool)
    assert pools[1] is None


async def test_other_scopes_are_ignored() -> None:
    client = Client()
    await GatewayServer("http://127.0.0.1:1")({"type": "websocket"}, client.receive, client.send)
    assert client.sent == []


async def test_client_leaves_mid_download(raw_server: RawServerFactory) -> None:
    upstream_saw_close = threading.Event()

    def endless(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nstart\r\n")
        if conn.recv(timeout=5) == b"":  # the body never ends: wait for the gateway to hang up
            upstream_saw_close.set()

    gateway = GatewayServer(raw_server(endless).url)
    client = Client()
    client.leave_after_body = True  # right after the first body chunk
    await asyncio.wait_for(gateway(http_scope("/"), client.receive, client.send), 5)
    assert client.types() == ["http.response.start", "http.response.body"]
    assert client.sent[1] == {"type": "http.response.body", "body": b"start", "more_body": True}
    assert gateway.pool.connections == [], "the unfinished upstream response was closed and released"
    assert await asyncio.to_thread(upstream_saw_close.wait, 5)
    await gateway.aclose()


async def test_client_leaves_mid_upload(server: UvicornServer) -> None:
    gateway = GatewayServer(server.url)
    client = Client({"type": "http.request", "body": b"x" * 1000, "more_body": True})
    client.leave()
    headers = [(b"content-length", b"100000")]
    await asyncio.wait_for(gateway(http_scope("/upload", "POST", headers), client.receive, client.send), 5)
    assert client.sent == [], "nobody is left to answer"
    assert gateway.pool.connections == []
    await gateway.aclose()


async def test_client_leaves_before_sending_anything() -> None:
    gateway = GatewayServer("http://127.0.0.1:1")
    client = Client({"type": "http.disconnect"})
    await gateway(http_scope("/upload", "POST"), client.receive, client.send)
    assert client.sent == []
    assert gateway._pool is None or gateway._pool.connections == []


async def test_upstream_breaks_mid_body_aborts_the_response(raw_server: RawServerFactory) -> None:
    def truncated(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
        conn.close()

    gateway = GatewayServer(raw_server(truncated).url)
    client = Client()
    with pytest.raises(httpcore.RemoteProtocolError):
        await gateway(http_scope("/"), client.receive, client.send)
    assert client.sent[0]["status"] == 200
    assert all(m.get("more_body", False) for m in client.sent[1:]), "the response was never completed"
    assert gateway.pool.connections == []
    await gateway.aclose()


async def test_client_leaves_while_the_upstream_thinks(raw_server: RawServerFactory) -> None:
    upstream_saw_close = threading.Event()

    def silent(conn: RawConnection) -> None:
        conn.read_request()
        if conn.recv(timeout=5) == b"":  # never answer: wait for the gateway to hang up
            upstream_saw_close.set()

    gateway = GatewayServer(raw_server(silent).url)
    client = Client()
    asyncio.get_running_loop().call_later(0.1, client.leave)
    await asyncio.wait_for(gateway(http_scope("/"), client.receive, client.send), 5)
    assert client.sent == []
    assert gateway.pool.connections == []
    assert await asyncio.to_thread(upstream_saw_close.wait, 5)
    await gateway.aclose()


async def test_disconnect_watch_skips_late_body_messages() -> None:
    """Body messages still arriving after the upstream answered (without reading them
    all) are skipped while waiting for the disconnect."""
    client = Client(
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.request", "body": b"late", "more_body": False},
    )
    request = ClientRequest(client.receive)
    assert await request.body() == b""
    client.leave()
    await asyncio.wait_for(request.disconnected(), 5)
    assert client.messages == []


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "scope", "expected"),
    [
        ("http://up.test:8001", http_scope("/a%2Fb?x=1"), "http://up.test:8001/a%2Fb?x=1"),
        ("https://up.test/api/", http_scope("/v1/items"), "https://up.test/api/v1/items"),
        ("http://[::1]:9000", {"path": "/é t", "query_string": b""}, "http://[::1]:9000/%C3%A9%20t"),
    ],
)
def test_upstream_url(upstream: str, scope: dict[str, Any], expected: str) -> None:
    assert GatewayServer(upstream).upstream_url(scope) == httpcore.URL(expected)


@pytest.mark.parametrize("upstream", ["ftp://up.test/", "socks5://up.test", "http://up.test/?q=1"])
def test_bad_upstream(upstream: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        GatewayServer(upstream)


def test_module_app_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM", "http://upstream.test:9999")
    module = importlib.reload(gateway_module)
    assert module.app.upstream == httpcore.URL("http://upstream.test:9999")
