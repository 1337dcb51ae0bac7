"""trio: its backend and primitives, the choice of library, and trio's cancellation.

The whole of tests/_async also runs under trio (see conftest.py); this module has what
only trio has: its backend's error mapping, cancel scopes and nurseries around requests,
a request cancelled at each of its checkpoints in turn, and one pool used by asyncio and
then by trio.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import time
import typing
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

import pytest
import trio
import trio.lowlevel
import trio.testing

import httpcore
from httpcore._backends.trio_backend import TrioBackend, TrioStream
from httpcore._library import current_async_library
from httpcore._synchronization import AsyncWaiterTimeouts
from httpcore._synchronization_trio import TrioEvent, TrioLock, TrioWaiter, trio_checkpoint
from tests.servers import tls
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.h2raw import H2Peer, h2_handler
from tests.servers.http_proxy import PproxyHTTP
from tests.servers.raw import RawConnection, RawServerFactory, per_connection
from tests.servers.tls import CertFiles

under_trio = pytest.mark.trio


def sender(data: bytes, then: str = "close") -> Callable[[RawConnection], None]:
    def handler(conn: RawConnection) -> None:
        conn.send(data)
        if then == "wait":
            conn.sleep(2)
        else:
            conn.close()

    return handler


class RecordingBackend(TrioBackend):
    """The trio backend, remembering every socket it opened."""

    def __init__(self) -> None:
        self.sockets: list[trio.socket.SocketType] = []

    async def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> TrioStream:
        stream = await super().connect_tcp(*args, **kwargs)
        self.sockets.append(stream.get_extra_info("socket"))
        return stream

    def open_sockets(self) -> int:
        return sum(1 for sock in self.sockets if sock.fileno() != -1)


async def fetch_into(
    http: httpcore.AsyncConnectionPool, url: str, responses: list[httpcore.Response]
) -> None:
    responses.append(await http.request("GET", url))


def idle(pool: httpcore.AsyncConnectionPool) -> bool:
    """Nothing in flight and nobody waiting: what a cancelled request must leave."""
    return all(count == 0 for count in pool._load.values()) and not pool._waiters and not pool._queued


# -- the backend ---------------------------------------------------------------------


@under_trio
async def test_read_write_eof_and_closed(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"0123456789"))
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    data = b""
    while len(data) < 10:
        data += await stream.read(4, timeout=5)
    assert data == b"0123456789"
    assert await stream.read(4, timeout=5) == b""
    assert await stream.read(4) == b""
    assert stream.is_readable()
    with pytest.raises(httpcore.WriteError):
        for _ in range(100):  # the peer is going (it lingers 1 s): a write fails once it reset
            await stream.write(b"x" * 10, timeout=1)
            await trio.sleep(0.05)
    await stream.aclose()
    await stream.aclose()
    assert stream.is_readable()
    with pytest.raises(httpcore.ReadError, match="closed"):
        await stream.read(4)
    with pytest.raises(httpcore.WriteError, match="closed"):
        await stream.write(b"x")


@under_trio
async def test_reset_is_read_error(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.sleep(0.05)
        conn.reset()

    srv = raw_server(handler)
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with pytest.raises(httpcore.ReadError):
        await stream.read(10, timeout=5)
    await stream.aclose()


@under_trio
async def test_read_timeout_and_extra_info(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"", then="wait"))
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    started = time.monotonic()
    with pytest.raises(httpcore.ReadTimeout):
        await stream.read(10, timeout=0.1)
    assert time.monotonic() - started < 1
    assert not stream.is_readable()
    assert stream.get_extra_info("is_readable") is False
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", srv.port)
    assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
    assert stream.get_extra_info("ssl_object") is None
    assert isinstance(stream.get_extra_info("socket"), trio.socket.SocketType)
    assert stream.get_extra_info("no such key") is None
    await stream.aclose()


@under_trio
async def test_write_timeout_closes_the_stream(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"", then="wait"))  # never reads
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with pytest.raises(httpcore.WriteTimeout):
        await stream.write(b"x" * (64 * 1024 * 1024), timeout=0.2)
    # Part of the data may be on the wire: nothing may follow it.
    with pytest.raises(httpcore.WriteError, match="closed"):
        await stream.write(b"x", timeout=1)


@under_trio
async def test_write_cancelled_midway_closes_the_stream(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"", then="wait"))
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with trio.move_on_after(0.2) as scope:
        await stream.write(b"x" * (64 * 1024 * 1024))
    assert scope.cancelled_caught
    with pytest.raises(httpcore.WriteError, match="closed"):
        await stream.write(b"x", timeout=1)


@under_trio
async def test_write_in_a_cancelled_scope_is_finished_then_cancelled(raw_server: RawServerFactory) -> None:
    """Cleanup (an HTTP/2 reset) writes in a cancelled scope: the bytes go out whole,
    then the cancellation is delivered."""
    received: list[bytes] = []

    def handler(conn: RawConnection) -> None:
        received.append(conn.recv(100, timeout=2))

    srv = raw_server(handler)
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.write(b"reset frame")
        pytest.fail("the cancellation was not delivered")  # pragma: no cover
    assert scope.cancelled_caught
    await stream.aclose()
    assert srv.wait_for_connections(1)
    for _ in range(250):  # the server thread may be slow to run on a busy machine
        if received:
            break
        await trio.sleep(0.02)
    assert received == [b"reset frame"]


@under_trio
async def test_cleanup_write_that_cannot_finish_closes_the_stream(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"", then="wait"))
    stream = await TrioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    started = time.monotonic()
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.write(b"x" * (64 * 1024 * 1024))
    assert scope.cancelled_caught
    assert time.monotonic() - started < 3  # shielded only briefly
    with pytest.raises(httpcore.WriteError, match="closed"):
        await stream.write(b"x", timeout=1)


@under_trio
async def test_tls(tls_server: UvicornServer, client_ssl_context: ssl.SSLContext) -> None:
    stream = await TrioBackend().connect_tcp("127.0.0.1", tls_server.port, timeout=5)
    tls = await stream.start_tls(client_ssl_context, "localhost", timeout=5)
    ssl_object = tls.get_extra_info("ssl_object")
    # The ssl.SSLObject itself, as from the asyncio backend: fails if trio moves it.
    assert isinstance(ssl_object, ssl.SSLObject)
    assert (ssl_object.version() or "").startswith("TLS")
    await tls.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", timeout=5)
    data = b""
    while True:
        chunk = await tls.read(65536, timeout=5)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, world!")
    await tls.aclose()


@under_trio
async def test_tls_errors(
    raw_server: RawServerFactory, tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    backend = TrioBackend()
    stream = await backend.connect_tcp("127.0.0.1", tls_server.port, timeout=5)
    with pytest.raises(httpcore.ConnectError, match="certificate"):
        await stream.start_tls(ssl.create_default_context(), "localhost", timeout=5)

    stream = await backend.connect_tcp("127.0.0.1", tls_server.port, timeout=5)
    with pytest.raises(httpcore.ConnectError, match=r"match|mismatch"):
        await stream.start_tls(client_ssl_context, "wrong.example", timeout=5)

    stream = await backend.connect_tcp("127.0.0.1", tls_server.port, timeout=5)
    with pytest.raises(httpcore.ConnectError):
        await stream.start_tls(client_ssl_context, None, timeout=5)  # hostname check needs a name

    garbage = raw_server(sender(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 10))
    stream = await backend.connect_tcp("127.0.0.1", garbage.port, timeout=5)
    with pytest.raises(httpcore.ConnectError):
        await stream.start_tls(client_ssl_context, "localhost", timeout=5)

    silent = raw_server(sender(b"", then="wait"))
    stream = await backend.connect_tcp("127.0.0.1", silent.port, timeout=5)
    with pytest.raises(httpcore.ConnectTimeout):
        await stream.start_tls(client_ssl_context, "localhost", timeout=0.2)
    with pytest.raises(httpcore.ReadError):
        await stream.read(10)

    stream = await backend.connect_tcp("127.0.0.1", silent.port, timeout=5)
    with trio.move_on_after(0.1) as scope:
        await stream.start_tls(client_ssl_context, "localhost")
    assert scope.cancelled_caught
    assert stream.is_readable()  # closed


@under_trio
async def test_connect_errors_and_timeouts(tmp_path: typing.Any, raw_server: RawServerFactory) -> None:
    backend = TrioBackend()
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_unix_socket(str(tmp_path / "missing.sock"), timeout=1)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", 1, timeout=1)
    options = [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", 1, timeout=1, socket_options=options)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp(
            "127.0.0.1", 1, timeout=1, local_address="127.0.0.1", socket_options=options
        )
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("name.invalid", 80, timeout=5)
    srv = raw_server(sender(b"hi"))
    with pytest.raises(httpcore.ConnectTimeout):
        await backend.connect_tcp("127.0.0.1", srv.port, timeout=0)
    with pytest.raises(httpcore.ConnectTimeout):
        await backend.connect_tcp("127.0.0.1", srv.port, timeout=0, socket_options=options)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "listening.sock"))
    listener.listen()
    try:
        with pytest.raises(httpcore.ConnectTimeout):
            await backend.connect_unix_socket(str(tmp_path / "listening.sock"), timeout=0)
        with trio.move_on_after(0) as scope:
            await backend.connect_unix_socket(str(tmp_path / "listening.sock"))
        assert scope.cancelled_caught
        with trio.move_on_after(0) as scope:
            await backend.connect_tcp("127.0.0.1", srv.port, socket_options=options)
        assert scope.cancelled_caught
    finally:
        listener.close()
    await backend.sleep(0)


@under_trio
async def test_socket_options_with_local_address(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"hi"))
    stream = await TrioBackend().connect_tcp(
        "127.0.0.1",
        srv.port,
        timeout=5,
        local_address="127.0.0.1",
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
    )
    sock = stream.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert await stream.read(10, timeout=5) == b"hi"
    await stream.aclose()


# -- the primitives ------------------------------------------------------------------


@under_trio
async def test_trio_lock_is_fifo_hands_over_and_skips_the_cancelled() -> None:
    lock = TrioLock()
    order: list[int] = []
    assert lock.try_acquire()
    assert lock.locked() and not lock.try_acquire()

    async def worker(index: int) -> None:
        await lock.acquire()
        order.append(index)
        await trio.lowlevel.checkpoint()
        lock.release()

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(worker, index)
            await trio.testing.wait_all_tasks_blocked()  # queued in this order
        with trio.move_on_after(0.05) as scope:
            await lock.acquire()  # queued last, then cancelled: it leaves the queue
        assert scope.cancelled_caught
        lock.release()  # handed straight to worker 0
        assert lock.locked() and not lock.try_acquire()
    assert order == [0, 1, 2]
    assert not lock.locked()


@under_trio
async def test_trio_event_and_waiter() -> None:
    event = TrioEvent()
    assert not await event.wait(0.01)
    event.set()
    assert event.is_set() and await event.wait(1)
    event.clear()

    async def set_later() -> None:
        await trio.sleep(0.02)
        event.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(set_later)
        assert await event.wait()
    event.clear()
    with trio.move_on_after(0.01) as scope:
        await event.wait()
    assert scope.cancelled_caught and not event.is_set()

    timeouts = AsyncWaiterTimeouts()
    waiter = TrioWaiter("origin")
    assert not await waiter.wait(0.01, timeouts)
    waiter = TrioWaiter("origin")
    waiter.wake()
    assert await waiter.wait(None, timeouts)
    waiter = TrioWaiter("origin", fresh=True)

    async def wake_later() -> None:
        await trio.sleep(0.02)
        waiter.wake()
        waiter.wake()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wake_later)
        assert await waiter.wait(5.0, timeouts)
    with trio.move_on_after(0.01) as scope:
        await TrioWaiter("origin").wait(None, timeouts)
    assert scope.cancelled_caught
    await trio_checkpoint()


def test_no_running_library_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="asyncio event loop or trio"):
        current_async_library()
    with pytest.raises(RuntimeError, match="asyncio event loop or trio"):
        httpcore.AsyncHTTPConnection(httpcore.URL("http://example.com/").origin)


def test_trio_backend_is_exported_lazily() -> None:
    assert httpcore.TrioBackend is TrioBackend
    missing = "NoSuchName"
    with pytest.raises(AttributeError):
        getattr(httpcore, missing)


def test_trio_is_not_imported_under_asyncio(server: UvicornServer) -> None:
    code = (
        "import asyncio, sys, httpcore\n"
        "async def main():\n"
        "    async with httpcore.AsyncConnectionPool() as http:\n"
        "        r = await http.request('GET', sys.argv[1])\n"
        "        assert r.status_code == 200\n"
        "asyncio.run(main())\n"
        "assert 'trio' not in sys.modules, 'trio was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, server.url + "/"], check=True, timeout=20)


@pytest.mark.parametrize("http2", [False, True], ids=["http11", "http2"])
def test_one_pool_under_asyncio_then_trio(
    server: UvicornServer, h2c_server: HypercornServer, http2: bool
) -> None:
    """A pool outliving asyncio.run() or trio.run() drops the connections of the run
    that ended (their loop is gone) and opens new ones with the library now running."""
    url = (h2c_server if http2 else server).url + "/"
    http = httpcore.AsyncConnectionPool(http1=not http2, http2=http2)

    async def get() -> str:
        r = await http.request("GET", url)
        assert r.body == b"Hello, world!"
        assert r.http_version == (b"HTTP/2" if http2 else b"HTTP/1.1")
        assert len(http.connections) == 1
        return current_async_library().name

    assert asyncio.run(get()) == "asyncio"
    assert trio.run(get) == "trio"
    assert asyncio.run(get()) == "asyncio"
    assert trio.run(get) == "trio"
    trio.run(http.aclose)


# -- the pool under trio -------------------------------------------------------------


@under_trio
async def test_100_tasks_over_10_connections(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=10) as http:
        bodies: list[bytes] = []

        async def one() -> None:
            bodies.append((await http.request("GET", server.url + "/")).body)

        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(one)
        assert bodies == [b"Hello, world!"] * 100
        assert len(http.connections) <= 10


@under_trio
async def test_pool_timeout_and_fifo_waiters(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=1) as http:
        first = await http.request("GET", server.url + "/", stream=True)
        with pytest.raises(httpcore.PoolTimeout):
            await http.request("GET", server.url + "/", timeout=httpcore.Timeout(5.0, pool=0.1))
        assert idle(http) is False and not http._waiters
        order: list[int] = []

        async def waiter(index: int) -> None:
            await http.request("GET", server.url + "/")
            order.append(index)

        async with trio.open_nursery() as nursery:
            for index in range(5):
                nursery.start_soon(waiter, index)
                await trio.sleep(0.01)
            await first.aclose()
        assert order == [0, 1, 2, 3, 4]
        assert idle(http)


@pytest.mark.parametrize("http2", [False, True], ids=["http11", "http2"])
@under_trio
async def test_cancellation_storm_then_fresh_requests(
    server: UvicornServer, h2c_server: HypercornServer, http2: bool
) -> None:
    backend = RecordingBackend()
    url = (h2c_server if http2 else server).url
    async with httpcore.AsyncConnectionPool(
        max_connections=4, http1=not http2, http2=http2, network_backend=backend
    ) as http:
        for delay in (0.0, 0.01, 0.05, 0.1):
            async with trio.open_nursery() as nursery:
                for _ in range(40):
                    nursery.start_soon(http.request, "GET", url + "/slow_body?delay=0.3")
                await trio.sleep(delay)
                nursery.cancel_scope.cancel()
            assert idle(http)
            # Some may be connections granted to a waiter that was then cancelled: not open yet.
            assert backend.open_sockets() <= len(http.connections) <= 4
            responses: list[httpcore.Response] = []
            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(fetch_into, http, url + "/", responses)
            assert [r.body for r in responses] == [b"Hello, world!"] * 8
    assert backend.open_sockets() == 0


@under_trio
async def test_http2_cancelled_stream_is_reset_and_the_connection_kept(
    h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(http2=True, ssl_context=client_ssl_context) as http:
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(http.request, "GET", h2_server.url + "/")
        [connection] = typing.cast(list[typing.Any], http.connections)
        with trio.move_on_after(0.1):
            async with http.stream("GET", h2_server.url + "/slow_body?delay=1") as r:
                async for _ in r.stream():
                    pass
        with trio.move_on_after(0.1):
            await http.request("POST", h2_server.url + "/slow_headers?delay=1", body=b"x" * 100_000)
        assert idle(http)
        assert http.connections == [connection] and not connection.is_closed()
        assert connection._connection._streams == {}
        r = await http.request("GET", h2_server.url + "/")
        assert r.http_version == b"HTTP/2" and r.body == b"Hello, world!"
        assert http.connections == [connection]


# -- a request cancelled at each of its checkpoints in turn ---------------------------


class CancelAtStep(trio.abc.Instrument):
    """Cancels ``scope`` when ``task`` is about to take its ``at``-th step: the task
    then sees ``Cancelled`` at the next checkpoint it reaches."""

    def __init__(self, task: trio.lowlevel.Task, scope: trio.CancelScope, at: int) -> None:
        self.task = task
        self.scope = scope
        self.at = at
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1
            if self.steps == self.at:
                self.scope.cancel()


async def upload() -> AsyncGenerator[bytes, None]:
    for _ in range(4):
        yield b"x" * 20_000


Send = Callable[[httpcore.AsyncConnectionPool, str], Awaitable[bytes]]


async def get(http: httpcore.AsyncConnectionPool, url: str) -> bytes:
    return (await http.request("GET", url + "/")).body


async def post_streamed(http: httpcore.AsyncConnectionPool, url: str) -> bytes:
    content = upload()
    try:
        async with http.stream("POST", url + "/echo_body", body=content) as r:
            body = b""
            async for chunk in r.stream():
                body += chunk
    finally:
        await content.aclose()
    return body


async def post_bytes(http: httpcore.AsyncConnectionPool, url: str) -> bytes:
    return (await http.request("POST", url + "/echo_body", body=b"y" * 100_000)).body


SCENARIOS: dict[str, tuple[str, dict[str, typing.Any], Send, bytes]] = {
    "http11-get": ("server", {}, get, b"Hello, world!"),
    "https11-streamed-post": ("tls_server", {}, post_streamed, b"x" * 80_000),
    "http2-alpn-get": ("h2_server", {"http2": True}, get, b"Hello, world!"),
    "http2-alpn-streamed-post": ("h2_server", {"http2": True}, post_streamed, b"x" * 80_000),
    "http2-prior-knowledge-post": ("h2c_server", {"http1": False, "http2": True}, post_bytes, b"y" * 100_000),
}
# Through proxies: (origin fixture, proxy fixture, pool options, send, expected body).
PROXIED: dict[str, tuple[str, str, dict[str, typing.Any], Send, bytes]] = {
    "http11-via-socks5": ("server", "microsocks", {}, get, b"Hello, world!"),
    "https11-via-connect-tunnel": ("tls_server", "tinyproxy", {}, post_bytes, b"y" * 100_000),
    "http2-via-https-proxy-tls-in-tls": ("h2_server", "pproxy_https", {"http2": True}, get, b"Hello, world!"),
}


@pytest.fixture(scope="module")
def pproxy_https(cert_files: CertFiles) -> Iterator[PproxyHTTP]:
    """pproxy as an HTTPS proxy: the origin's TLS runs inside the proxy's."""
    proxy = PproxyHTTP(certs=(str(cert_files.certfile), str(cert_files.keyfile))).start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("reuse", [False, True], ids=["new-connection", "kept-alive"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@under_trio
async def test_cancelled_at_every_checkpoint(
    request: pytest.FixtureRequest, client_ssl_context: ssl.SSLContext, scenario: str, reuse: bool
) -> None:
    """Cancel the request at its first checkpoint, then its second, ... until it
    completes: each time no slot is held, no socket leaks, the pool serves the next."""
    fixture, options, send, expected = SCENARIOS[scenario]
    url = request.getfixturevalue(fixture).url
    await sweep(client_ssl_context, url, options, send, expected, reuse)


@pytest.mark.parametrize("scenario", list(PROXIED))
@under_trio
async def test_cancelled_at_every_checkpoint_through_a_proxy(
    request: pytest.FixtureRequest, client_ssl_context: ssl.SSLContext, scenario: str
) -> None:
    """The same through a SOCKS5 proxy, a CONNECT tunnel and an HTTPS proxy (TLS in
    TLS): every step of the proxied connect is a checkpoint to cancel at."""
    origin, proxy_fixture, options, send, expected = PROXIED[scenario]
    port = request.getfixturevalue(origin).port
    url = f"https://localhost:{port}" if origin != "server" else f"http://127.0.0.1:{port}"
    proxy_url = request.getfixturevalue(proxy_fixture).url
    proxy = httpcore.Proxy(proxy_url, ssl_context=tls.client_ssl_context())
    steps = await sweep(client_ssl_context, url, {**options, "proxy": proxy}, send, expected, reuse=False)
    assert steps >= 5  # it did pass through the proxied connect's checkpoints


async def sweep(
    client_ssl_context: ssl.SSLContext,
    url: str,
    options: dict[str, typing.Any],
    send: Send,
    expected: bytes,
    reuse: bool,
) -> int:
    """Cancel at step 0, 1, 2, ... until the request completes; returns that step."""
    backend = RecordingBackend()
    task = trio.lowlevel.current_task()
    deadline = time.monotonic() + 20

    def new_pool() -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            ssl_context=client_ssl_context, network_backend=backend, **options
        )

    http = new_pool()
    try:
        if reuse:
            assert await send(http, url) == expected
        for at in range(500):
            assert time.monotonic() < deadline, f"still cancelling at step {at}"
            with trio.CancelScope() as scope:
                instrument = CancelAtStep(task, scope, at)
                trio.lowlevel.add_instrument(instrument)
                try:
                    if at == 0:
                        scope.cancel()
                    body = await send(http, url)
                finally:
                    trio.lowlevel.remove_instrument(instrument)
            assert idle(http), f"cancelled at step {at}: {http!r}"
            assert backend.open_sockets() <= len(http.connections), f"cancelled at step {at}"
            if not scope.cancelled_caught:
                assert body == expected
                break
            with trio.fail_after(10):
                assert await send(http, url) == expected, f"after a cancel at step {at}"
            if not reuse:
                await http.aclose()
                assert backend.open_sockets() == 0
                http = new_pool()
        else:  # pragma: no cover
            pytest.fail("the request never completed")
    finally:
        await http.aclose()
    assert backend.open_sockets() == 0
    assert at >= (2 if reuse else 5)  # it did pass through several checkpoints
    return at


@under_trio
async def test_http2_requests_on_a_silent_connection_go_to_a_new_one(raw_server: RawServerFactory) -> None:
    """As in test_http2_async_only.py, in a nursery: the read wait that PINGs a dead
    connection fails it while another task is blocked reading from it."""

    def stall(peer: H2Peer) -> None:
        peer.wait_requests(4)
        peer.send_raw(b"\x00\x00\x64\x00\x00\x00\x00\x00\x01" + b"ten bytes!")
        peer.conn.sleep(10)

    def serve(peer: H2Peer) -> None:
        peer.serve_forever()

    srv = raw_server(per_connection(h2_handler(stall), h2_handler(serve)))
    results: dict[str, object] = {}

    async def one(path: str, timeout: float) -> None:
        try:
            results[path] = (await http.request("GET", srv.url + path, timeout=timeout)).body
        except httpcore.ReadTimeout as exc:
            results[path] = exc

    async with httpcore.AsyncConnectionPool(http1=False, http2=True, timeout=5.0) as http:
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "/short", 0.6)
            for index in range(3):
                nursery.start_soon(one, f"/{index}", 5.0)
        assert isinstance(results.pop("/short"), httpcore.ReadTimeout)
        assert results == {f"/{index}": b"ok:/%d" % index for index in range(3)}
        assert time.monotonic() - started < 2.0  # the read timeout (0.6 s) and a retry, not 5 s
    assert srv.connections_accepted >= 2
