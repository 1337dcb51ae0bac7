"""The native asyncio backend: one ``asyncio.Protocol`` per connection, no extra tasks.

Theory of operation: the event loop pushes received bytes into the protocol's buffer
(``data_received``); ``read()`` returns buffered bytes at once and only when the buffer
is empty parks on a single future, armed with a timer handle for the read deadline. The
buffer is bounded: above a high-water mark the transport stops reading until the caller
catches up, so a slow consumer applies back-pressure to the server. Writes go straight
to the transport and wait only while the transport reports its buffer full (each waiting
writer with its own future and deadline, so several tasks may write). Because the
loop tells the protocol at once about EOF, resets and unsolicited bytes, checking an idle
connection's liveness costs no system call.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import typing
from collections.abc import Iterable

from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from .base import AsyncNetworkBackend, AsyncNetworkStream, SocketOption, apply_socket_options
from .tls_in_tls import AsyncTLSInTLSStream

__all__ = ["AsyncioBackend", "AsyncioStream"]

_READ_TIMEOUT = (ReadTimeout, "Timed out waiting for the server to send data")
_WRITE_TIMEOUT = (WriteTimeout, "Timed out waiting for the server to accept data")

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the transport delivers and wakes the one waiting reader or writer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[None] | None = None
        # Every writer waiting for the transport to drain, with its deadline: a caller's
        # stream (after a 101, say) may be written by several tasks at once.
        self.writers: list[tuple[asyncio.Future[None], float | None]] = []
        self.write_paused = False
        self.read_paused = False
        # Deadlines of the waiting reader and writers, and one timer for the earliest.
        # A wait with a later deadline than the armed timer leaves the timer alone; when
        # it fires it re-arms for whatever deadline is current. So steady traffic with
        # a 5 s timeout schedules about one timer per 5 s, not one per read.
        self.reader_deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_all()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake_all()
        self.cancel_timer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for writer, _ in self.writers:
            if not writer.done():
                writer.set_result(None)

    def arm(self, deadline: float) -> None:
        """Make sure the timer fires no later than ``deadline``."""
        timer = self.timer
        if timer is None or deadline < self.timer_at:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._on_timer)
            self.timer_at = deadline

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        # The loop may run a timer up to its clock resolution early.
        now = self.loop.time() + 0.001
        pending = None
        waits: list[tuple[float | None, asyncio.Future[None] | None, tuple[type[Exception], str]]]
        waits = [(self.reader_deadline, self.reader, _READ_TIMEOUT)]
        waits += [(deadline, writer, _WRITE_TIMEOUT) for writer, deadline in self.writers]
        for deadline, waiter, error in waits:
            if deadline is None or waiter is None:
                continue
            if deadline <= now:
                if not waiter.done():
                    waiter.set_exception(error[0](error[1]))
            elif pending is None or deadline < pending:
                pending = deadline
        if pending is not None:
            self.arm(pending)

    def _wake_all(self) -> None:
        for waiter in [self.reader, *(writer for writer, _ in self.writers)]:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


def _close_orphaned(transport: asyncio.Transport) -> None:
    """Close the socket of a TCP transport whose loop has ended.

    asyncio's selector transports close their socket in ``_call_connection_lost``, which
    their ``close()`` schedules on the loop; with the loop gone it is called here (a
    TLS transport's protocol then fails to schedule its own callback: it is done with the
    socket all the same). A transport without that method (another loop's) has its
    socket shut down, so the server sees the end, and is freed when collected.
    ``test_asyncio_stream_closed_after_its_loop_ended`` fails if asyncio changes this.
    """
    sock = transport.get_extra_info("socket")
    call_connection_lost = getattr(transport, "_call_connection_lost", None)
    if call_connection_lost is not None:
        try:
            call_connection_lost(None)
        except RuntimeError:  # the TLS protocol's call_soon on the closed loop
            pass
    if sock is not None and sock.fileno() != -1:  # pragma: no cover - another transport
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class AsyncioStream(AsyncNetworkStream):
    """A stream over an asyncio transport and its ``_StreamProtocol``."""

    def __init__(
        self, transport: asyncio.Transport, protocol: _StreamProtocol, tcp: asyncio.Transport | None = None
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._tcp = tcp  # under TLS: the TCP transport the TLS one runs on
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks:
            if protocol.eof or self._closed:
                if protocol.error is not None:
                    raise ReadError(str(protocol.error) or repr(protocol.error))
                if self._closed:
                    raise ReadError("The connection is closed")
                return b""
            if protocol.loop.is_closed():  # a pool outliving the asyncio.run() that opened it
                raise ReadError("The event loop that opened this connection has closed")
            await self._wait_readable(timeout)
            if not protocol.chunks:
                if protocol.error is not None:
                    raise ReadError(str(protocol.error) or repr(protocol.error))
                return b""
        # Each chunk goes out as the loop delivered it (asyncio caps those at 256 KiB):
        # cutting it to max_bytes would only copy, and a copy over glibc's 128 KiB mmap
        # threshold costs page faults on every read.
        chunk = protocol.chunks.popleft()
        protocol.buffered -= len(chunk)
        if protocol.read_paused and protocol.buffered < LOW_WATER:
            protocol.read_paused = False
            self._transport.resume_reading()
        return chunk

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        protocol = self._protocol
        if self._closed or (protocol.eof and protocol.error is not None):
            raise WriteError(str(protocol.error or "The connection is closed"))
        if self._transport.is_closing():
            raise WriteError("The connection is closed")
        try:
            self._transport.write(data)
        except (OSError, RuntimeError) as exc:
            raise WriteError(str(exc)) from exc
        if protocol.write_paused:
            await self._wait_writable(timeout)
            if protocol.error is not None or self._transport.is_closing():
                raise WriteError(str(protocol.error or "The connection was closed while writing"))

    async def _wait_readable(self, timeout: float | None) -> None:
        protocol = self._protocol
        future: asyncio.Future[None] = protocol.loop.create_future()
        protocol.reader = future
        if timeout is not None:
            protocol.reader_deadline = deadline = protocol.loop.time() + timeout
            protocol.arm(deadline)
        try:
            await future
        finally:
            protocol.reader = None
            protocol.reader_deadline = None

    async def _wait_writable(self, timeout: float | None) -> None:
        protocol = self._protocol
        future: asyncio.Future[None] = protocol.loop.create_future()
        deadline = None if timeout is None else protocol.loop.time() + timeout
        entry = (future, deadline)
        protocol.writers.append(entry)
        if deadline is not None:
            protocol.arm(deadline)
        try:
            await future
        finally:
            protocol.writers.remove(entry)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            transport = self._transport
            if self._protocol.loop.is_closed():
                # Its loop has ended (a pool outliving asyncio.run()): nothing can run
                # the transport's close, so it is done here.
                _close_orphaned(self._tcp or transport)
                return
            try:
                queued = transport.get_write_buffer_size()
            except AttributeError:  # pragma: no cover - Python 3.10: a TLS transport after connection_lost
                queued = 0
            if queued:
                # Data still queued means the exchange was abandoned (a write timeout,
                # an early response): close() would hold the socket, and the buffer,
                # until a peer that may never read had taken it all.
                transport.abort()
            else:
                transport.close()
                if self._tcp is not None:
                    # TLS: close() has passed our close_notify to the TCP transport, then
                    # would hold the socket until the server answers with its own (up to
                    # 30 s; for ever if the loop stops first). Let go now, as the sync side
                    # does: the kernel still sends what it has, unless the server reads
                    # nothing and it could not take the close_notify either.
                    self._tcp.abort()
            self._protocol.cancel_timer()

    def abort(self) -> None:
        """Drop the connection at once, without a TLS close_notify."""
        self._closed = True
        self._transport.abort()
        self._protocol.cancel_timer()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        if self._transport.get_extra_info("ssl_object") is not None:
            # TLS in TLS (an https:// proxy's tunnel): the loop cannot do it before 3.11,
            # and 3.11's failure paths for it are broken (a handshake timeout raises
            # TypeError inside the loop and leaks the transport).
            return await AsyncTLSInTLSStream.handshake(self, ssl_context, server_hostname, timeout)
        protocol = self._protocol
        loop = protocol.loop
        if protocol.chunks:
            self.abort()
            raise ConnectError("The server sent data before the TLS handshake")
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(
                    self._transport,
                    protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeout,
                ),
                timeout,
            )
        except (asyncio.TimeoutError, TimeoutError) as exc:
            self._transport.abort()
            raise ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ssl.CertificateError, ConnectionError, RuntimeError) as exc:
            self._transport.abort()
            raise ConnectError(str(exc) or repr(exc)) from exc
        if transport is None:  # pragma: no cover - the loop closed underneath us
            raise ConnectError("TLS handshake failed")
        protocol.transport = transport
        return AsyncioStream(transport, protocol, self._transport)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            return self.is_readable()
        return self._transport.get_extra_info(info)

    def is_readable(self) -> bool:
        protocol = self._protocol
        return (
            bool(protocol.chunks)
            or protocol.eof
            or self._transport.is_closing()
            or protocol.loop.is_closed()  # checked out after its asyncio.run() ended
        )


class AsyncioBackend(AsyncNetworkBackend):
    """Connects with the running asyncio loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        protocol = _StreamProtocol(loop)
        local_addr = None if local_address is None else (local_address, 0)
        try:
            if socket_options:
                coro = self._connect_with_options(loop, protocol, host, port, local_addr, socket_options)
            else:
                coro = loop.create_connection(lambda: protocol, host, port, local_addr=local_addr)
            transport, _ = await asyncio.wait_for(coro, timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise ConnectTimeout(f"Timed out connecting to {host}:{port}") from exc
        except (OSError, ValueError, UnicodeError) as exc:
            raise ConnectError(str(exc) or repr(exc)) from exc
        return AsyncioStream(typing.cast(asyncio.Transport, transport), protocol)

    async def _connect_with_options(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: _StreamProtocol,
        host: str,
        port: int,
        local_addr: tuple[str, int] | None,
        socket_options: Iterable[SocketOption],
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last_error: OSError | None = None
        for family, type_, proto, _, address in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                apply_socket_options(sock, socket_options)
                if local_addr is not None:
                    sock.bind(local_addr)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return await loop.create_connection(lambda: protocol, sock=sock)
        raise last_error or OSError(f"No address found for {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        protocol = _StreamProtocol(loop)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            apply_socket_options(sock, socket_options)
            await asyncio.wait_for(loop.sock_connect(sock, path), timeout)
            transport, _ = await loop.create_unix_connection(lambda: protocol, sock=sock)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            sock.close()
            raise ConnectTimeout(f"Timed out connecting to {path}") from exc
        except OSError as exc:
            sock.close()
            raise ConnectError(str(exc) or repr(exc)) from exc
        except BaseException:
            sock.close()
            raise
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise ConnectTimeout(f"Timed out resolving {host}") from exc
        except (OSError, UnicodeError, ValueError) as exc:
            raise ConnectError(f"Could not resolve {host}: {exc}") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
