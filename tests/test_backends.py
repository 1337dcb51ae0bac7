"""The network backends directly: buffering, back-pressure, deadlines and error mapping."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import sys
import threading
import time
import typing

import pytest

import httpcore
from httpcore._backends.asyncio_backend import HIGH_WATER, AsyncioBackend, AsyncioStream
from httpcore._backends.sync_backend import SyncBackend, _timeval
from tests.servers.asgi_server import UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory

MiB = 1024 * 1024


def sender(data: bytes, then: str = "close") -> typing.Callable[[RawConnection], None]:
    def handler(conn: RawConnection) -> None:
        conn.send(data)
        if then == "wait":
            conn.sleep(2)
        else:
            conn.close()

    return handler


async def test_asyncio_read_splits_and_reports_eof(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"0123456789"))
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    data = b""
    while len(data) < 10:
        data += await stream.read(4, timeout=5)
    assert data == b"0123456789"  # whole chunks, however small max_bytes is
    assert await stream.read(4, timeout=5) == b""
    assert await stream.read(4, timeout=5) == b""
    assert stream.is_readable()
    with pytest.raises(httpcore.WriteError):
        await stream.write(b"x" * 10, timeout=1)
        await asyncio.sleep(0.1)
        await stream.write(b"x" * 10, timeout=1)
    await stream.aclose()
    with pytest.raises(httpcore.ReadError):
        await stream.read(4)
    with pytest.raises(httpcore.WriteError):
        await stream.write(b"x")


async def test_asyncio_reset_is_read_error(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        # Not at once: a reset that beats the client's connect() is a ConnectError.
        conn.sleep(0.05)
        conn.reset()

    srv = raw_server(handler)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    await asyncio.sleep(0.2)
    with pytest.raises(httpcore.ReadError):
        await stream.read(10, timeout=5)
    with pytest.raises(httpcore.WriteError):
        await stream.write(b"x")
    await stream.aclose()


async def test_asyncio_reset_while_waiting(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.sleep(0.2)
        conn.reset()

    srv = raw_server(handler)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with pytest.raises(httpcore.ReadError):
        await stream.read(10, timeout=5)
    await stream.aclose()


async def test_asyncio_read_timeout_and_extra_info(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"", then="wait"))
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    started = time.monotonic()
    with pytest.raises(httpcore.ReadTimeout):
        await stream.read(10, timeout=0.1)
    assert time.monotonic() - started < 1
    assert not stream.is_readable()
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", srv.port)
    assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
    assert stream.get_extra_info("is_readable") is False
    assert stream.get_extra_info("ssl_object") is None
    assert stream.get_extra_info("peername") == ("127.0.0.1", srv.port)
    assert isinstance(stream, AsyncioStream)
    stream.abort()


async def test_asyncio_back_pressure_bounds_memory(server: UvicornServer) -> None:
    size = 32 * 1024 * 1024
    async with httpcore.AsyncConnectionPool() as http:
        async with http.stream("GET", server.url + f"/stream?size={size}") as r:
            iterator = r.stream()
            total = len(await iterator.__anext__())
            await asyncio.sleep(0.5)  # a slow consumer: the server must be held back
            stream = r.extensions["network_stream"]
            assert stream._protocol.read_paused
            # Reading stops once past the mark: at most one transport read (256 KiB) beyond it.
            assert stream._protocol.buffered <= HIGH_WATER + 256 * 1024
            async for chunk in iterator:
                total += len(chunk)
        assert total == size


async def test_asyncio_start_tls_errors(
    raw_server: RawServerFactory, client_ssl_context: ssl.SSLContext
) -> None:
    early = raw_server(sender(b"hello before tls", then="wait"))
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", early.port, timeout=5)
    await asyncio.sleep(0.2)
    with pytest.raises(httpcore.ConnectError):
        await stream.start_tls(client_ssl_context, "localhost", timeout=1)

    silent = raw_server(sender(b"", then="wait"))
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", silent.port, timeout=5)
    with pytest.raises(httpcore.ConnectTimeout):
        await stream.start_tls(client_ssl_context, "localhost", timeout=0.2)


async def test_asyncio_tls_close_does_not_wait_for_the_server(
    raw_server: RawServerFactory, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    # The server never answers our close_notify: the socket is closed all the same, on
    # the next loop turns, not after asyncio's 30 s shutdown timeout (or never, if the
    # loop stops first).
    srv = raw_server(sender(b"", then="wait"), ssl_context=server_ssl_context)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    tls = await stream.start_tls(client_ssl_context, "localhost", timeout=5)
    sock = tls.get_extra_info("socket")
    assert sock.fileno() >= 0
    await tls.aclose()
    for _ in range(5):
        await asyncio.sleep(0)
    assert sock.fileno() == -1


async def test_asyncio_tls_close_with_data_queued_aborts(
    raw_server: RawServerFactory, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    # A server that reads nothing: what we wrote stays queued, and closing drops it.
    srv = raw_server(sender(b"", then="wait"), ssl_context=server_ssl_context)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    tls = await stream.start_tls(client_ssl_context, "localhost", timeout=5)
    sock = tls.get_extra_info("socket")
    with pytest.raises(httpcore.WriteTimeout):
        for _ in range(1000):
            await tls.write(b"x" * 65536, timeout=0.2)
    await tls.aclose()
    for _ in range(5):
        await asyncio.sleep(0)
    assert sock.fileno() == -1


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_asyncio_stream_closed_after_its_loop_ended(
    raw_server: RawServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    tls: bool,
) -> None:
    # A pool can outlive asyncio.run(): its connections are closed later, from another
    # loop (or library). The socket is closed then, not left to the garbage collector
    # (whose ResourceWarning the leak check would report). Leans on asyncio's selector
    # transports (see _close_orphaned): this fails if that changes.
    srv = raw_server(sender(b"", then="wait"), ssl_context=server_ssl_context if tls else None)

    async def connect() -> httpcore.AsyncNetworkStream:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
        if tls:
            return await stream.start_tls(client_ssl_context, "localhost", timeout=5)
        return stream

    stream = asyncio.run(connect())
    sock = stream.get_extra_info("socket")
    assert sock.fileno() >= 0
    asyncio.run(stream.aclose())
    assert sock.fileno() == -1


async def test_asyncio_connect_errors(tmp_path: typing.Any) -> None:
    backend = AsyncioBackend()
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_unix_socket(str(tmp_path / "missing.sock"), timeout=1)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp(
            "127.0.0.1", 1, timeout=1, socket_options=[(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]
        )
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp(
            "127.0.0.1",
            1,
            timeout=1,
            local_address="127.0.0.1",
            socket_options=[(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)],
        )
    await backend.sleep(0)


async def test_asyncio_socket_options_with_local_address(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"hi"))
    stream = await AsyncioBackend().connect_tcp(
        "127.0.0.1",
        srv.port,
        timeout=5,
        local_address="127.0.0.1",
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
    )
    assert await stream.read(10, timeout=5) == b"hi"
    await stream.aclose()


def test_sync_stream_basics(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"0123456789"))
    stream = SyncBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    data = b""
    while len(data) < 10:
        data += stream.read(4, timeout=5)
    assert data == b"0123456789"
    assert stream.read(4, timeout=5) == b""
    assert stream.is_readable()
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", srv.port)
    assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
    assert stream.get_extra_info("ssl_object") is None
    assert stream.get_extra_info("is_readable") is True
    assert stream.get_extra_info("unknown") is None
    stream.close()
    with pytest.raises(httpcore.ReadError):
        stream.read(4, timeout=1)
    with pytest.raises(httpcore.WriteError):
        stream.write(b"x", timeout=1)
    assert stream.is_readable()


def test_sync_read_timeout_and_tls_errors(
    raw_server: RawServerFactory, client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(sender(b"", then="wait"))
    stream = SyncBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(10, timeout=0.1)
    assert not stream.is_readable()
    with pytest.raises(httpcore.ConnectTimeout):
        stream.start_tls(client_ssl_context, "localhost", timeout=0.2)

    early = raw_server(sender(b"not a tls server hello at all", then="wait"))
    stream = SyncBackend().connect_tcp("127.0.0.1", early.port, timeout=5)
    with pytest.raises(httpcore.ConnectError):
        stream.start_tls(client_ssl_context, "localhost", timeout=1)


def test_sync_connect_errors(tmp_path: typing.Any, raw_server: RawServerFactory) -> None:
    backend = SyncBackend()
    with pytest.raises(httpcore.ConnectError):
        backend.connect_unix_socket(str(tmp_path / "missing.sock"), timeout=1)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp(
            "127.0.0.1", 1, timeout=1, socket_options=[(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]
        )
    srv = raw_server(sender(b"hi"))
    stream = backend.connect_tcp(
        "127.0.0.1",
        srv.port,
        timeout=5,
        local_address="127.0.0.1",
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
    )
    assert stream.read(10, timeout=5) == b"hi"
    stream.close()
    backend.sleep(0)


async def test_asyncio_writers_waiting_at_once_each_end(raw_server: RawServerFactory) -> None:
    """Several tasks writing to one stream (a caller's, after a 101) that the server does
    not read: each waits with its own deadline and gets its own WriteTimeout."""
    srv = raw_server(sender(b"", then="wait"))
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    started = time.monotonic()

    async def write(timeout: float) -> float:
        with pytest.raises(httpcore.WriteTimeout):
            while True:  # until the transport's buffer is full and stays so
                await stream.write(b"x" * MiB, timeout=timeout)
        return time.monotonic() - started

    ended = await asyncio.wait_for(asyncio.gather(write(0.3), write(0.6), write(0.9)), 10)
    assert list(ended) == sorted(ended) and ended[-1] < 5
    assert isinstance(stream, AsyncioStream)
    stream.abort()


async def test_asyncio_writers_waiting_at_once_all_resume(raw_server: RawServerFactory) -> None:
    """When the server catches up, every waiting writer goes on."""
    total = 3 * 8 * MiB

    def late_reader(conn: RawConnection) -> None:
        conn.sleep(0.3)
        got = 0
        while got < total:
            data = conn.recv(timeout=5.0)
            if not data:
                break
            got += len(data)
        conn.send(b"%d" % got)
        conn.close()

    srv = raw_server(late_reader)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)

    async def write() -> None:
        for _ in range(8):
            await stream.write(b"x" * MiB, timeout=5)

    await asyncio.wait_for(asyncio.gather(write(), write(), write()), 10)
    assert await stream.read(100, timeout=5) == b"%d" % total
    await stream.aclose()


def test_sync_write_timeout(raw_server: RawServerFactory) -> None:
    srv = raw_server(sender(b"", then="wait"))
    stream = SyncBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    with pytest.raises(httpcore.WriteTimeout):
        stream.write(b"x" * (64 * 1024 * 1024), timeout=0.2)
    stream.close()


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(None, (0, 0)), (0, (0, 1)), (-1.0, (0, 1)), (1e-9, (0, 1)), (1.5, (1, 500_000)), (2.0, (2, 0))],
)
def test_timeval(timeout: float | None, expected: tuple[int, int]) -> None:
    # (0, 0) means "no timeout" to the kernel: only None may become that.
    assert struct.unpack("ll", _timeval(timeout)) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel timeouts are used on Linux only")
def test_sync_plain_socket_keeps_kernel_timeouts(raw_server: RawServerFactory) -> None:
    def kernel_timeout(sock: socket.socket, option: int) -> float:
        seconds, micro = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, 16))
        return float(seconds + micro / 1e6)  # the kernel rounds to its clock tick

    srv = raw_server(sender(b"", then="wait"))
    stream = SyncBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    sock = stream.get_extra_info("socket")
    assert sock.gettimeout() is None  # blocking mode: a read is one recv(), no poll() first
    started = time.monotonic()
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(10, timeout=0.15)
    assert 0.1 <= time.monotonic() - started < 1.0
    assert kernel_timeout(sock, socket.SO_RCVTIMEO) == pytest.approx(0.15, abs=0.011)
    started = time.monotonic()
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(10, timeout=0)  # zero means at once, never "no timeout"
    assert time.monotonic() - started < 0.5
    assert 0 < kernel_timeout(sock, socket.SO_RCVTIMEO) <= 0.011
    stream.write(b"ping", timeout=2.5)  # the write timeout is its own
    assert kernel_timeout(sock, socket.SO_SNDTIMEO) == pytest.approx(2.5, abs=0.011)
    assert kernel_timeout(sock, socket.SO_RCVTIMEO) <= 0.011
    stream.close()


def echo(conn: RawConnection) -> None:
    while data := conn.recv():
        conn.send(data)


def test_sync_tls_read_in_one_thread_while_another_writes(
    raw_server: RawServerFactory, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    # What HTTP/2 does from threads: one session read and written at once. Unserialised,
    # OpenSSL's per-session state was shared by the two calls: spurious EOFs, and records
    # the peer could not decrypt. Several connections: it went wrong early, sometimes.
    srv = raw_server(echo, ssl_context=server_ssl_context)
    sent = bytes(range(256)) * (2 * MiB // 256)
    for _ in range(8):
        tcp = SyncBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
        stream = tcp.start_tls(client_ssl_context, "localhost", timeout=5)
        received = bytearray()

        def read(stream: typing.Any = stream, received: bytearray = received) -> None:
            # Each call with a timeout of its own, as HTTP/2 passes what is left of a deadline.
            while len(received) < len(sent) and (data := stream.read(MiB, timeout=10 + len(received) % 7)):
                received.extend(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for start in range(0, len(sent), 16 * 1024):
            stream.write(sent[start : start + 16 * 1024], timeout=20 + start % 5)
        reader.join(20)
        assert not reader.is_alive()
        assert received == sent
        stream.close()


def test_sync_tls_timeouts_and_close(
    raw_server: RawServerFactory, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    def answer_once(conn: RawConnection) -> None:
        conn.send(conn.recv())
        conn.sleep(3)  # then reads nothing more: our writes fill the buffers

    srv = raw_server(answer_once, ssl_context=server_ssl_context)
    tcp = SyncBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    stream = tcp.start_tls(client_ssl_context, "localhost", timeout=5)
    assert stream.get_extra_info("socket").gettimeout() == 0.0  # never waits inside OpenSSL
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(10, timeout=0.1)
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(10, timeout=0)  # zero means at once
    stream.write(b"ping", timeout=None)
    assert stream.read(2, timeout=None) == b"pi"
    assert stream.is_readable()  # the rest is in the session
    assert stream.read(10, timeout=5) == b"ng"
    started = time.monotonic()
    with pytest.raises(httpcore.WriteTimeout):
        stream.write(b"x" * (64 * MiB), timeout=0.3)  # one deadline for the whole write
    assert time.monotonic() - started < 2.0
    outcome: list[typing.Any] = []
    reader = threading.Thread(target=lambda: outcome.append(_read_or_error(stream)), daemon=True)
    reader.start()
    time.sleep(0.1)
    stream.close()  # wakes the thread waiting to read, which sees no TLS record as data
    reader.join(5)
    assert outcome and outcome[0] in (b"", httpcore.ReadError)
    with pytest.raises(httpcore.WriteError):
        stream.write(b"x", timeout=1)
    stream.close()  # twice is harmless


def _read_or_error(stream: typing.Any) -> typing.Any:
    try:
        return stream.read(10, timeout=None)
    except httpcore.ReadError:
        return httpcore.ReadError
