"""TLS in TLS at the backend level: a stream through an HTTPS proxy's tunnel to a raw
TLS origin, in the blocking and the asyncio backend (both drive an SSLObject by hand);
and its send queue: a reader never waits behind a writer stuck in the outer write, and
no record is lost or sent out of order, whoever sends it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import select
import socket
import ssl
import threading
import time
import typing
from collections.abc import Iterator

import pytest

import httpcore
from httpcore._backends.base import AsyncNetworkStream, NetworkStream
from httpcore._backends.tls_in_tls import AsyncTLSInTLSStream, TLSInTLSStream
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


# -- A reader never waits behind a writer blocked in the outer write ---------------------
# The proxy's relay is one thread: while it cannot pass the origin's bytes on to us (we
# are not reading), it reads nothing from us, so our writer blocks in the outer write.
# A second writer's records are queued behind it. The reader must still read: if it
# waited for the sender (as it did), nobody would read and the writers would only come
# back at their write timeout.

FLOOD = 2 * 1024 * 1024
UPLOAD = 2 * 1024 * 1024
SMALL_BUFFERS = [
    (socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024),
    (socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024),
]


@pytest.fixture
def stalling_proxy() -> Iterator[ProxyServer]:
    proxy = ProxyServer(ssl_context=tls.server_ssl_context(), buffer_size=32 * 1024).start()
    yield proxy
    proxy.stop()


def flood_then_count(received: list[int]) -> typing.Callable[[RawConnection], None]:
    """Send FLOOD bytes while counting what the client sends (its upload and a 5-byte
    tail), then answer b"done". One thread, non-blocking: a server that stopped reading
    while it sends would deadlock with the relay by itself."""

    def handler(conn: RawConnection) -> None:
        sock = typing.cast(ssl.SSLSocket, conn.sock)
        sock.setblocking(False)
        flood, total = memoryview(b"f" * FLOOD), 0
        deadline = time.monotonic() + 10.0
        while (flood or total < UPLOAD + 5) and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if flood else [], [], 0.1)
            if readable or sock.pending():
                try:
                    data = sock.recv(65536)
                except ssl.SSLWantReadError:
                    data = b"-"
                if not data:
                    break
                total += len(data) if data != b"-" else 0
            if writable:
                try:
                    flood = flood[sock.send(flood[:65536]) :]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
        received.append(total)
        sock.settimeout(5.0)
        conn.send(b"done")

    return handler


def wait_until(condition: typing.Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the scene to be set"
        time.sleep(0.01)


def test_sync_reader_reads_while_a_writer_is_blocked_in_the_outer_write(
    stalling_proxy: ProxyServer, raw_server: RawServerFactory
) -> None:
    received: list[int] = []
    origin = raw_server(flood_then_count(received), ssl_context=tls.server_ssl_context(), timeout=15.0)
    outer: NetworkStream = httpcore.SyncBackend().connect_tcp(
        "127.0.0.1", stalling_proxy.port, 5.0, socket_options=SMALL_BUFFERS
    )
    outer = outer.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    outer.write(connect_request(origin.port), 5.0)
    assert outer.read(1024, 5.0).startswith(b"HTTP/1.1 200")
    stream = typing.cast(TLSInTLSStream, outer.start_tls(tls.client_ssl_context(), "localhost", 5.0))
    time.sleep(0.3)  # the flood fills every buffer on its way to us: the relay stops reading us
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        upload = pool.submit(stream.write, b"u" * UPLOAD, 5.0)
        wait_until(stream._send_lock.locked)
        time.sleep(0.2)  # blocked in the outer write, holding the send lock
        tail = pool.submit(stream.write, b"tail!", 5.0)
        wait_until(lambda: stream._outgoing.pending > 0)  # its records queue behind the upload's
        flood = 0
        while flood < FLOOD:
            data = stream.read(65536, 5.0)
            assert data, "the connection ended"
            flood += len(data)
        assert flood == FLOOD
        upload.result(timeout=10)
        tail.result(timeout=10)
        assert stream.read(1024, 5.0) == b"done"
    assert received == [UPLOAD + 5]
    stream.close()


async def test_async_reader_reads_while_a_writer_is_blocked_in_the_outer_write(
    stalling_proxy: ProxyServer, raw_server: RawServerFactory
) -> None:
    received: list[int] = []
    origin = raw_server(flood_then_count(received), ssl_context=tls.server_ssl_context(), timeout=15.0)
    outer: AsyncNetworkStream = await httpcore.AsyncioBackend().connect_tcp(
        "127.0.0.1", stalling_proxy.port, 5.0, socket_options=SMALL_BUFFERS
    )
    outer = await outer.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    await outer.write(connect_request(origin.port), 5.0)
    assert (await outer.read(1024, 5.0)).startswith(b"HTTP/1.1 200")
    stream = typing.cast(
        AsyncTLSInTLSStream, await outer.start_tls(tls.client_ssl_context(), "localhost", 5.0)
    )
    await asyncio.sleep(0.3)

    async def send_upload() -> None:
        # In pieces: asyncio's TLS transport takes one write whole, however stuck its
        # socket, and makes the next ones wait once it holds 512 KiB.
        for _ in range(UPLOAD // 65536):
            await stream.write(b"u" * 65536, 5.0)

    upload = asyncio.ensure_future(send_upload())
    await asyncio.sleep(0.2)
    assert not upload.done()  # blocked in the outer write
    tail = asyncio.ensure_future(stream.write(b"tail!", 5.0))
    await asyncio.sleep(0.05)
    assert not tail.done()  # waiting behind the upload
    flood = 0
    while flood < FLOOD:
        data = await stream.read(65536, 5.0)
        assert data, "the connection ended"
        flood += len(data)
    assert flood == FLOOD
    await asyncio.wait_for(asyncio.gather(upload, tail), 10.0)
    assert await stream.read(1024, 5.0) == b"done"
    assert received == [UPLOAD + 5]
    await stream.aclose()


# -- The send queue, step by step -------------------------------------------------------
# A stand-in session makes one record per write ("<data>") and, when told to, one of its
# own on a read (as a TLS 1.3 key update is answered); the outer stream records who sent
# what and holds every write at a gate. The real sessions cannot be made to answer a
# key update on cue; what is tested here is only who sends which queued bytes, when.


class FakeSession:
    def __init__(self, outgoing: ssl.MemoryBIO) -> None:
        self.outgoing = outgoing
        self.reply = b""  # a record the next read makes

    def write(self, data: memoryview) -> int:
        self.outgoing.write(b"<" + bytes(data) + b">")
        return len(data)

    def read(self, max_bytes: int) -> bytes:
        if self.reply:
            self.outgoing.write(self.reply)
            self.reply = b""
        return b"data"


class GatedStream(NetworkStream):
    """An outer stream whose writes wait at a gate (open by default)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()  # a write is waiting at the gate
        self.sent: list[tuple[str, bytes]] = []
        self.fail = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # pragma: no cover
        raise AssertionError("the stand-in session never wants to read")

    def write(self, data: bytes, timeout: float | None = None) -> None:
        self.writing.set()
        if not self.gate.wait(timeout):
            raise httpcore.WriteTimeout("gate")
        if self.fail:
            raise httpcore.WriteError("broken")
        self.sent.append((threading.current_thread().name, bytes(data)))

    def close(self) -> None:
        pass


def gated() -> tuple[TLSInTLSStream, FakeSession, GatedStream]:
    outer, outgoing = GatedStream(), ssl.MemoryBIO()
    session = FakeSession(outgoing)
    stream = TLSInTLSStream(outer, typing.cast(ssl.SSLObject, session), ssl.MemoryBIO(), outgoing)
    return stream, session, outer


def in_thread(name: str, call: typing.Callable[[], object]) -> concurrent.futures.Future[object]:
    future: concurrent.futures.Future[object] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def test_sync_reader_leaves_its_records_to_the_sender() -> None:
    stream, session, outer = gated()
    session.reply = b"<R1>"
    assert stream.read(10, 1.0) == b"data"  # nobody sending: it sends its own
    assert outer.sent == [("MainThread", b"<R1>")]
    outer.gate.clear()
    first = in_thread("first", lambda: stream.write(b"A", 5.0))
    assert outer.writing.wait(5.0)  # holds the send lock, stuck in the outer write
    second = in_thread("second", lambda: stream.write(b"B", 5.0))
    wait_until(lambda: stream._writers == 1)  # queued, waiting for its turn
    session.reply = b"<R2>"
    assert stream.read(10, 1.0) == b"data"  # does not wait: the sender will send it
    late = in_thread("late", lambda: stream.write(b"C", 0.1))
    with pytest.raises(httpcore.WriteTimeout):  # its turn did not come in time ...
        late.result(timeout=5.0)
    outer.gate.set()
    first.result(timeout=5.0)
    second.result(timeout=5.0)
    # ... its records still went, in their place: none lost, none out of order.
    assert outer.sent[1:] == [("first", b"<A>"), ("first", b"<B><R2><C>")]
    assert stream._writers == 0 and not stream._send_lock.locked()


def test_sync_reader_sending_hands_over_to_a_waiting_writer() -> None:
    stream, session, outer = gated()
    outer.gate.clear()
    session.reply = b"<R>"
    reader = in_thread("reader", lambda: stream.read(10, 5.0))
    assert outer.writing.wait(5.0)  # the reader sends its own records, slowly
    writer = in_thread("writer", lambda: stream.write(b"A", 5.0))
    wait_until(lambda: stream._writers == 1)
    outer.gate.set()
    assert reader.result(timeout=5.0) == b"data"
    writer.result(timeout=5.0)
    assert outer.sent == [("reader", b"<R>"), ("writer", b"<A>")]  # the writer sent its own


def test_sync_failed_send_fails_later_writes() -> None:
    stream, session, outer = gated()
    outer.gate.clear()
    outer.fail = True
    first = in_thread("first", lambda: stream.write(b"A", None))
    assert outer.writing.wait(5.0)
    second = in_thread("second", lambda: stream.write(b"B", 5.0))
    wait_until(lambda: stream._writers == 1)
    outer.gate.set()
    with pytest.raises(httpcore.WriteError, match="broken"):
        first.result(timeout=5.0)
    with pytest.raises(httpcore.WriteError, match="earlier write"):  # it waited its turn for nothing
        second.result(timeout=5.0)
    outer.fail = False
    with pytest.raises(httpcore.WriteError, match="earlier write"):  # after a lost record, nothing
        stream.write(b"B", 1.0)
    session.reply = b"<R>"
    assert stream.read(10, 1.0) == b"data"  # reading goes on; its records cannot go
    assert outer.sent == []
    assert not stream._send_lock.locked()


class AsyncGatedStream(AsyncNetworkStream):
    """``GatedStream`` for tasks."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent: list[tuple[str, bytes]] = []
        self.fail = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # pragma: no cover
        raise AssertionError("the stand-in session never wants to read")

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.gate.wait(), timeout)
        except asyncio.TimeoutError:
            raise httpcore.WriteTimeout("gate") from None
        if self.fail:
            raise httpcore.WriteError("broken")
        task = asyncio.current_task()
        self.sent.append((task.get_name() if task else "", bytes(data)))

    async def aclose(self) -> None:
        pass


def async_gated() -> tuple[AsyncTLSInTLSStream, FakeSession, AsyncGatedStream]:
    outer, outgoing = AsyncGatedStream(), ssl.MemoryBIO()
    session = FakeSession(outgoing)
    stream = AsyncTLSInTLSStream(outer, typing.cast(ssl.SSLObject, session), ssl.MemoryBIO(), outgoing)
    return stream, session, outer


async def test_async_reader_leaves_its_records_to_the_sender() -> None:
    stream, session, outer = async_gated()
    session.reply = b"<R1>"
    assert await stream.read(10, 1.0) == b"data"
    assert [data for _, data in outer.sent] == [b"<R1>"]
    outer.gate.clear()
    first = asyncio.create_task(stream.write(b"A", 5.0), name="first")
    await asyncio.sleep(0.01)
    second = asyncio.create_task(stream.write(b"B", 5.0), name="second")
    await asyncio.sleep(0.01)
    assert stream._writers == 1 and not first.done()
    session.reply = b"<R2>"
    assert await asyncio.wait_for(stream.read(10, 1.0), 1.0) == b"data"  # does not wait
    with pytest.raises(httpcore.WriteTimeout):  # its turn did not come in time ...
        await stream.write(b"C", 0.1)
    cancelled = asyncio.create_task(stream.write(b"D", 5.0))
    await asyncio.sleep(0.01)
    cancelled.cancel()  # ... nor this one's, cancelled while it waited
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    outer.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5.0)
    # ... their records still went, in their place: none lost, none out of order.
    assert outer.sent[1:] == [("first", b"<A>"), ("first", b"<B><R2><C><D>")]
    assert stream._writers == 0 and not stream._send_lock.locked()


async def test_async_reader_sending_hands_over_to_a_waiting_writer() -> None:
    stream, session, outer = async_gated()
    outer.gate.clear()
    session.reply = b"<R>"
    reader = asyncio.create_task(stream.read(10, 5.0), name="reader")
    await asyncio.sleep(0.01)
    writer = asyncio.create_task(stream.write(b"A", 5.0), name="writer")
    await asyncio.sleep(0.01)
    assert stream._writers == 1
    outer.gate.set()
    assert await asyncio.wait_for(reader, 5.0) == b"data"
    await asyncio.wait_for(writer, 5.0)
    assert outer.sent == [("reader", b"<R>"), ("writer", b"<A>")]


async def test_async_failed_send_fails_later_writes() -> None:
    stream, session, outer = async_gated()
    outer.gate.clear()
    outer.fail = True
    first = asyncio.create_task(stream.write(b"A", None))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(stream.write(b"B", 5.0))
    await asyncio.sleep(0.01)
    assert stream._writers == 1
    outer.gate.set()
    with pytest.raises(httpcore.WriteError, match="broken"):
        await first
    with pytest.raises(httpcore.WriteError, match="earlier write"):
        await second
    outer.fail = False
    with pytest.raises(httpcore.WriteError, match="earlier write"):
        await stream.write(b"B", 1.0)
    session.reply = b"<R>"
    assert await stream.read(10, 1.0) == b"data"
    assert outer.sent == []
    assert not stream._send_lock.locked()
    # A sender cancelled in the outer write lets go; a cancelled write is not a lost one.
    stream, session, outer = async_gated()
    outer.gate.clear()
    holder = asyncio.create_task(stream.write(b"X", 5.0))
    await asyncio.sleep(0.01)
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    outer.gate.set()
    await stream.write(b"Y", 1.0)
    assert [data for _, data in outer.sent] == [b"<Y>"]
