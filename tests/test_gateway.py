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
import importlib.util
import json
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import httpcore
from examples import gateway as gateway_module
from examples.gateway import ClientWatch, GatewayServer, LateWatches, Message, Scope
from tests.servers.app import pattern
from tests.servers.asgi_server import UvicornServer
from tests.servers.netutil import bind_listener, format_url
from tests.servers.raw import RawConnection, RawServerFactory, keep_alive, ok, response


@contextmanager
def serve(gateway: GatewayServer) -> Iterator[str]:
    """Run ``gateway`` under uvicorn with lifespan events; yield its base URL."""
    srv = UvicornServer(app=gateway)
    srv.server.config.lifespan = "on"
    # The client address is the socket's (uvicorn would take it from a loopback
    # client's own X-Forwarded-For).
    srv.server.config.proxy_headers = False
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
    assert ["x-forwarded-proto", "http"] in seen["headers"]
    assert ["x-forwarded-host", gateway_url.removeprefix("http://")] in seen["headers"]
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
    # A small body is read whole and sent in one message.
    assert client.sent[1:] == [{"type": "http.response.body", "body": b"Hello, world!", "more_body": False}]
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


@pytest.mark.parametrize("size", [100, 1_000_000])
async def test_upstream_breaks_mid_body(raw_server: RawServerFactory, size: int) -> None:
    """A small body is read whole before the response starts: cut short, it is a 502.
    A large one streams: cut short, the response is aborted, never completed."""

    def truncated(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * 10)
        conn.close()

    gateway = GatewayServer(raw_server(truncated).url)
    client = Client()
    if size < gateway_module.SMALL_BODY:
        await gateway(http_scope("/"), client.receive, client.send)
        assert client.sent[0]["status"] == 502
        assert client.sent[1]["body"].startswith(b"Bad Gateway: RemoteProtocolError")
    else:
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
    all) are skipped while listening for the disconnect, which cancels the exchange."""
    client = Client({"type": "http.request", "body": b"late", "more_body": False})

    async def exchange() -> None:
        watch = ClientWatch(client.receive, LateWatches(0.25))
        watch.now()
        await asyncio.sleep(10)

    task = asyncio.ensure_future(exchange())
    await asyncio.sleep(0.01)
    client.leave()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
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


def test_configuration_from_the_environment() -> None:
    environ = {
        "GATEWAY_UPSTREAM": "https://up.test/api",
        "GATEWAY_MAX_CONNECTIONS": "500",
        "GATEWAY_KEEPALIVE_EXPIRY": "2.5",
        "GATEWAY_CONNECT_TIMEOUT": "1",
        "GATEWAY_READ_TIMEOUT": "2",
        "GATEWAY_WRITE_TIMEOUT": "3",
        "GATEWAY_POOL_TIMEOUT": "4",
        "GATEWAY_HTTP2": "1",
        "GATEWAY_PRESERVE_HOST": "yes",
    }
    gateway = GatewayServer.from_environ(environ)
    assert gateway.upstream == httpcore.URL("https://up.test/api")
    assert gateway.timeout == httpcore.Timeout(connect=1, read=2, write=3, pool=4)
    limits = gateway.limits
    assert (limits.max_connections, limits.max_keepalive_connections, limits.keepalive_expiry) == (
        500,
        500,
        2.5,
    )
    assert gateway.http2 and gateway.preserve_host
    defaults = GatewayServer.from_environ({"GATEWAY_HTTP2": "0"})
    assert defaults.upstream == httpcore.URL("http://127.0.0.1:8001")
    assert defaults.timeout == gateway_module.DEFAULT_TIMEOUT
    assert not defaults.http2 and not defaults.preserve_host
    assert defaults.limits.max_keepalive_connections == defaults.limits.max_connections == 256


_HEAP_CHURN = """
import resource, sys
def churn():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        blocks = [b"x" * (256 * 1024) for _ in range(8)]  # eight bodies' chunks in flight
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
import examples.gateway
churn()
print(churn())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's allocator only")
@pytest.mark.parametrize("keep", ["1", "0"])
def test_keep_freed_heap(keep: str) -> None:
    """Chunk-sized blocks freed and allocated again land on pages already mapped when the
    gateway's module has tuned the allocator (GATEWAY_KEEP_HEAP, on by default); with it
    off, glibc trims its heap and nearly every block faults its pages in again."""
    root = Path(__file__).resolve().parent.parent
    env = {"GATEWAY_KEEP_HEAP": keep, "PYTHONPATH": str(root), "PATH": ""}
    run = subprocess.run([sys.executable, "-c", _HEAP_CHURN], env=env, capture_output=True, timeout=25)
    faults = int(run.stdout)
    every_block = 50 * 8 * (256 * 1024 // resource.getpagesize())
    if keep == "1":
        assert faults < every_block // 20, faults
    else:
        assert faults > every_block // 4, faults  # the cost the tuning removes


# -- production behaviour, end to end ------------------------------------------------


def test_pool_keeps_every_connection_alive(server: UvicornServer) -> None:
    """As many concurrent requests as the gateway has connections: every upstream
    connection is kept alive afterwards and carries the next wave (none reopened)."""
    gateway = GatewayServer(server.url, max_connections=24)

    async def wave(http: httpcore.AsyncConnectionPool, url: str) -> set[int]:
        async def one() -> None:
            response = await http.request("GET", url + "/slow_headers?delay=0.2")
            assert response.status_code == 200

        await asyncio.gather(*(one() for _ in range(24)))
        return {id(connection) for connection in gateway.pool.connections}

    async def main(url: str) -> None:
        async with httpcore.AsyncConnectionPool(max_connections=24) as http:
            first = await wave(http, url)
            second = await wave(http, url)
        assert len(first) == 24
        assert second == first, "the second wave reused the kept-alive connections"

    with serve(gateway) as url:
        asyncio.run(main(url))


async def test_forwarded_headers_appended_and_set(gateway_url: str) -> None:
    headers = [
        (b"X-Forwarded-For", b"203.0.113.7"),
        (b"X-Forwarded-For", b"198.51.100.1"),
        (b"X-Forwarded-Proto", b"https"),  # the client's word is not taken
        (b"X-Forwarded-Host", b"evil.test"),
    ]
    async with httpcore.AsyncConnectionPool() as http:
        response = await http.request("GET", gateway_url + "/echo_headers", headers=headers)
    seen = [(name.lower(), value) for name, value in json.loads(response.body)["headers"]]
    forwarded = [(name, value) for name, value in seen if name.startswith("x-forwarded")]
    assert forwarded == [
        ("x-forwarded-for", "203.0.113.7, 198.51.100.1, 127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", gateway_url.removeprefix("http://")),
    ]


async def test_preserve_host(server: UvicornServer) -> None:
    with serve(GatewayServer(server.url, preserve_host=True)) as url:
        async with httpcore.AsyncConnectionPool() as http:
            response = await http.request(
                "GET", url + "/echo_headers", headers=[(b"Host", b"www.example.test")]
            )
    seen = json.loads(response.body)["headers"]
    assert [value for name, value in seen if name.lower() == "host"] == ["www.example.test"]


def test_no_free_connection_is_503(server: UvicornServer) -> None:
    gateway = GatewayServer(server.url, max_connections=1, timeout=httpcore.Timeout(5.0, pool=0.2))

    async def main(url: str) -> list[int]:
        async with httpcore.AsyncConnectionPool() as http:
            slow = asyncio.ensure_future(http.request("GET", url + "/slow_headers?delay=1"))
            await asyncio.sleep(0.3)
            queued = await http.request("GET", url + "/")
            return [(await slow).status_code, queued.status_code]

    with serve(gateway) as url:
        assert asyncio.run(main(url)) == [200, 503]


def test_idempotent_request_retried_once_when_the_connection_was_closed_under_it(
    raw_server: RawServerFactory,
) -> None:
    """The upstream answers one request per connection, then closes it as the next
    arrives: a GET is sent again on a new connection, a POST is not (502)."""

    def one_then_close(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(ok(b"served"))
        conn.read_head()  # the next request: hang up without a word
        conn.reset()

    upstream = raw_server(one_then_close)
    with serve(GatewayServer(upstream.url)) as url, httpcore.ConnectionPool() as http:
        assert http.request("GET", url + "/a").body == b"served"
        assert http.request("GET", url + "/b").body == b"served"  # retried on a new connection
        assert upstream.connections_accepted == 2
        assert http.request("POST", url + "/c", body=b"x").status_code == 502
        assert upstream.connections_accepted == 2, "the POST was not sent again"


@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_status_with_content_length(raw_server: RawServerFactory, status: int) -> None:
    """A 304 may carry the Content-Length of the representation it stands for: passed
    on, the ASGI server would wait for that many body bytes and drop the connection."""
    head = response(status, headers=[(b"content-length", b"1234"), (b"etag", b'"v1"')], content_length=False)
    upstream = raw_server(keep_alive(head))
    with serve(GatewayServer(upstream.url)) as url, httpcore.ConnectionPool() as http:
        first = http.request("GET", url + "/")
        second = http.request("GET", url + "/")
    assert (first.status_code, first.body) == (status, b"")
    assert header(first, b"content-length") == []
    assert header(first, b"etag") == [b'"v1"']
    assert first.extensions["network_stream"] is second.extensions["network_stream"], "still kept alive"


def test_informational_responses_are_not_passed_on(raw_server: RawServerFactory) -> None:
    early_hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    upstream = raw_server(keep_alive(early_hints + ok(b"final")))
    with serve(GatewayServer(upstream.url)) as url, httpcore.ConnectionPool() as http:
        result = http.request("GET", url + "/")
        again = http.request("GET", url + "/")
    assert (result.status_code, result.body, again.body) == (200, b"final", b"final")


def test_head_through_a_raw_upstream_keeps_content_length(raw_server: RawServerFactory) -> None:
    upstream = raw_server(
        keep_alive(response(200, headers=[(b"content-length", b"5000")], content_length=False))
    )
    with serve(GatewayServer(upstream.url)) as url, httpcore.ConnectionPool() as http:
        first = http.request("HEAD", url + "/")
        second = http.request("HEAD", url + "/")
    assert (first.status_code, first.body, header(first, b"content-length")) == (200, b"", [b"5000"])
    assert first.extensions["network_stream"] is second.extensions["network_stream"]


def test_client_leaving_mid_download_through_uvicorn_frees_the_upstream(raw_server: RawServerFactory) -> None:
    """uvicorn drops what is sent after the client left, without an error: the gateway
    notices the disconnect itself and closes the endless upstream response at once."""
    upstream_saw_close = threading.Event()

    def endless(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(10_000):  # bounded: 10,000 x 0.01 s at most
                conn.send(b"4000\r\n" + b"z" * 0x4000 + b"\r\n")
                conn.sleep(0.01)
        except OSError:
            upstream_saw_close.set()

    upstream = raw_server(endless)
    gateway = GatewayServer(upstream.url)
    with serve(gateway) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /endless HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert upstream_saw_close.wait(5), "the upstream connection was closed"
        for _ in range(100):  # the pool lets go of it (bounded wait)
            if not gateway.pool.connections:
                break
            time.sleep(0.02)
        assert gateway.pool.connections == []


def test_client_leaving_mid_upload_through_uvicorn_frees_the_upstream(raw_server: RawServerFactory) -> None:
    upstream_saw_close = threading.Event()

    def sink(conn: RawConnection) -> None:
        conn.read_head()
        while conn.recv(timeout=5):
            pass
        upstream_saw_close.set()

    upstream = raw_server(sink)
    with serve(GatewayServer(upstream.url)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /up HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000000\r\n\r\n")
            sock.sendall(b"u" * 300_000)
            time.sleep(0.2)
        assert upstream_saw_close.wait(5), "the half-sent upstream request was abandoned"


async def test_http2_upstream_multiplexes_client_requests(h2c_server: Any) -> None:
    gateway = GatewayServer(h2c_server.url, http2=True)
    assert GatewayServer.from_environ({"GATEWAY_HTTP2": "1"}).http2
    with serve(gateway) as url:
        async with httpcore.AsyncConnectionPool(max_connections=20) as http:
            responses = await asyncio.gather(
                *(
                    http.request("GET", url + "/echo_headers", headers=[(b"x-n", b"%d" % i)])
                    for i in range(20)
                )
            )
            assert len(gateway.pool.connections) == 1, "one upstream connection carried them all"
    for i, result in enumerate(responses):
        seen = json.loads(result.body)
        assert seen["http_version"] == "2"
        assert ["x-n", str(i)] in seen["headers"]


# -- the soak and the memory bound, with the gateway under uvicorn in a child process ----


def soak_module() -> Any:
    path = Path(__file__).resolve().parent.parent / "scripts" / "soak_gateway.py"
    spec = importlib.util.spec_from_file_location("soak_gateway", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(90)
def test_soak() -> None:
    """A bounded run of scripts/soak_gateway.py (make soak-gateway runs thousands):
    every kind of request, fault and vanishing client, checked; no fd or memory growth."""
    soak = soak_module()
    tally = soak.soak(requests=240, seconds=60, concurrency=8, max_size=256 * 1024, python=sys.executable)
    assert tally.failures == []
    assert tally.outcomes["requests"] == 240
    kinds = {outcome.split(":")[0] for outcome in tally.outcomes} - {"requests"}
    assert len(kinds) >= 10, f"most kinds were drawn: {sorted(kinds)}"


@pytest.mark.timeout(90)
def test_memory_flat_whatever_the_body_size() -> None:
    """64 MiB up and 64 MiB down through the gateway: its peak resident memory grows by
    a few buffers, not by the bodies (back-pressure both ways)."""
    soak = soak_module()

    async def transfer(url: str, size: int) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            block = b"m" * (1024 * 1024)
            for _ in range(size // len(block)):
                yield block

        async with httpcore.AsyncConnectionPool(timeout=30.0) as http:
            response = await http.request("POST", url + "/soak/upload", body=chunks())
            assert json.loads(response.body)["length"] == size
            received = 0
            async with http.stream("GET", f"{url}/soak/download?size={size}&seed=2") as download:
                assert download.status_code == 200
                async for chunk in download.stream():
                    received += len(chunk)
            assert received == size

    with soak.Upstream() as upstream:
        gateway = soak.Gateway(f"http://127.0.0.1:{upstream.port}", sys.executable, read_timeout=30)
        try:
            asyncio.run(transfer(gateway.url, 1024 * 1024))  # warm: imports, buffers, the pool
            before = gateway.rss_mib("VmHWM")
            asyncio.run(transfer(gateway.url, 64 * 1024 * 1024))
            grown = gateway.rss_mib("VmHWM") - before
        finally:
            gateway.stop()
    assert grown < 24, f"the gateway's peak memory grew by {grown:.1f} MiB for 128 MiB moved"
