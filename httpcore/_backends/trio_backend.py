"""The native trio backend: trio's socket and TLS streams, with trio's deadlines.

Theory of operation: a connection is a ``trio.SocketStream``, wrapped in a
``trio.SSLStream`` for TLS (``https_compatible``: a server that closes without a TLS
close_notify ends the stream like a plain close, as HTTPS servers do). Each read, write,
connect or handshake that has a timeout runs in a cancel scope with that deadline, and a
scope that fired becomes our ``*Timeout``; trio's, the OS's and ``ssl``'s errors become
our network errors. Closing closes the socket at once, without awaiting: it never raises
``trio.Cancelled`` and never blocks, so cleanup code in a cancelled scope (where trio
cancels every await again) still frees the connection, and a task blocked reading the
same socket wakes with ``ClosedResourceError``. This module is imported only when trio is
running, so trio stays an optional dependency.
"""

from __future__ import annotations

import math
import os
import socket
import ssl
import typing
from collections.abc import Iterable

import trio

from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from .base import AsyncNetworkBackend, AsyncNetworkStream, SocketOption, apply_socket_options

__all__ = ["TrioBackend", "TrioStream"]

# How long a write begun in a cancelled scope may take to finish (see TrioStream.write).
CLEANUP_WRITE_TIMEOUT = 0.5
RECEIVE_SIZE = 256 * 1024

# What trio raises for a broken, closed or misused stream, and the OS and ssl errors a
# raw socket or a TLS handshake may raise before trio wraps them.
_STREAM_ERRORS = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.BusyResourceError,
    OSError,
    ssl.SSLError,
    ValueError,
)


def _describe(exc: BaseException) -> str:
    """The most telling message: trio's stream errors wrap the OS or ssl error."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, trio.BrokenResourceError) and cause is not None:
        exc = cause
    return str(exc) or repr(exc)


def _in_trio_run() -> bool:
    """Whether a trio.run is going on in this thread (in_trio_run() needs trio 0.29)."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else trio.current_time() + timeout


class TrioStream(AsyncNetworkStream):
    """A trio stream (plain or TLS) and the socket under it."""

    def __init__(self, stream: trio.abc.Stream, sock: trio.socket.SocketType) -> None:
        self._stream = stream
        self._socket = sock
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # max_bytes is a hint (see AsyncNetworkStream.read): reading up to RECEIVE_SIZE,
        # as asyncio's transports do, takes a large body in a quarter of the reads, and
        # each read is a pass through trio's scheduler.
        size = max(max_bytes, RECEIVE_SIZE)
        try:
            if timeout is None:
                return bytes(await self._stream.receive_some(size))
            with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
                return bytes(await self._stream.receive_some(size))
        except _STREAM_ERRORS as exc:
            if self._closed:
                raise ReadError("The connection is closed") from exc
            raise ReadError(_describe(exc)) from exc
        except RuntimeError as exc:  # no trio.run: a pool outliving the one that opened it
            raise ReadError(f"This connection belongs to a trio.run that has ended ({exc})") from exc
        assert scope.cancelled_caught
        raise ReadTimeout("Timed out waiting for the server to send data")

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        # A send that trio cancels part-way leaves part of the data on the wire, and
        # the protocol above cannot know how much: the stream is closed, so nothing
        # can follow a torn message. A send that starts in a scope already cancelled
        # is cleanup (an HTTP/2 reset or GOAWAY): it is finished, shielded for a
        # short while, and the cancellation is delivered after it.
        cleanup = trio.current_effective_deadline() == -math.inf
        if timeout is None and not cleanup:
            deadline = math.inf
        else:
            deadline = trio.current_time() + (CLEANUP_WRITE_TIMEOUT if timeout is None else timeout)
            if cleanup:
                deadline = min(deadline, trio.current_time() + CLEANUP_WRITE_TIMEOUT)
        try:
            with trio.CancelScope(deadline=deadline, shield=cleanup) as scope:
                await self._stream.send_all(data)
        except _STREAM_ERRORS as exc:
            # Left open: the server may have answered before it stopped reading.
            raise WriteError("The connection is closed" if self._closed else _describe(exc)) from exc
        except BaseException:
            self.close()
            raise
        if scope.cancelled_caught:
            self.close()
            if not cleanup:
                raise WriteTimeout("Timed out waiting for the server to accept data")
        if cleanup:
            await trio.lowlevel.checkpoint()  # raises the pending cancellation

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket now; a TLS stream is ``https_compatible`` and would send
        nothing more on closing either."""
        if not self._closed:
            self._closed = True
            if _in_trio_run():
                self._socket.close()  # wakes any task waiting on it
            else:  # the trio.run that opened it is over (a pool outliving it)
                fd = self._socket.detach()
                if fd >= 0:
                    os.close(fd)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> TrioStream:
        if ssl_context.check_hostname and not server_hostname:
            # ssl.wrap_bio would not refuse it, and the handshake would check no name.
            self.close()
            raise ConnectError("check_hostname requires server_hostname")
        try:
            tls = trio.SSLStream(
                self._stream, ssl_context, server_hostname=server_hostname, https_compatible=True
            )
            with trio.CancelScope(deadline=_deadline(timeout)) as scope:
                await tls.do_handshake()
        except _STREAM_ERRORS as exc:
            self.close()
            raise ConnectError(_describe(exc)) from exc
        except BaseException:
            self.close()
            raise
        if scope.cancelled_caught:
            self.close()
            raise ConnectTimeout("TLS handshake timed out")
        return TrioStream(tls, self._socket)

    def get_extra_info(self, info: str) -> typing.Any:
        stream = self._stream
        if info == "ssl_object":
            if not isinstance(stream, trio.SSLStream):
                return None
            # The ssl.SSLObject itself, as the asyncio backend gives; trio keeps it in a
            # private attribute (test_trio_ssl_object_is_the_ssl_object checks it). The
            # SSLStream answers the same questions should that attribute go away.
            return getattr(stream, "_ssl_object", stream)
        if info == "client_addr":
            return self._socket.getsockname()
        if info == "server_addr":
            return self._socket.getpeername()
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return self.is_readable()
        return None

    def is_readable(self) -> bool:
        if self._closed or not _in_trio_run():
            return True  # closed, or checked out after its trio.run ended: not usable
        stream = self._stream
        if isinstance(stream, trio.SSLStream) and stream.pending():
            return True
        try:
            return self._socket.is_readable()
        except (OSError, ValueError):  # pragma: no cover - a socket closed under us
            return True


class TrioBackend(AsyncNetworkBackend):
    """Connects with trio's sockets, under the running ``trio.run``."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> TrioStream:
        try:
            with trio.CancelScope(deadline=_deadline(timeout)) as scope:
                if socket_options:
                    stream = await self._connect_with_options(host, port, local_address, socket_options)
                else:
                    stream = await trio.open_tcp_stream(host, port, local_address=local_address)
                return TrioStream(stream, stream.socket)
        except (OSError, ValueError, UnicodeError, TypeError) as exc:
            raise ConnectError(str(exc) or repr(exc)) from exc
        assert scope.cancelled_caught
        raise ConnectTimeout(f"Timed out connecting to {host}:{port}")

    async def _connect_with_options(
        self,
        host: str,
        port: int,
        local_address: str | None,
        socket_options: Iterable[SocketOption],
    ) -> trio.SocketStream:
        options = list(socket_options)
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last_error: OSError | None = None
        for family, type_, proto, _, address in infos:
            sock = trio.socket.socket(family, type_, proto)
            try:
                apply_socket_options(typing.cast(socket.socket, sock), options)
                if local_address is not None:
                    await sock.bind((local_address, 0))
                await sock.connect(address)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return trio.SocketStream(sock)
        raise last_error or OSError(f"No address found for {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> TrioStream:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            apply_socket_options(typing.cast(socket.socket, sock), socket_options)
            with trio.CancelScope(deadline=_deadline(timeout)) as scope:
                await sock.connect(path)
        except OSError as exc:
            sock.close()
            raise ConnectError(str(exc) or repr(exc)) from exc
        except BaseException:
            sock.close()
            raise
        if scope.cancelled_caught:
            sock.close()
            raise ConnectTimeout(f"Timed out connecting to {path}")
        return TrioStream(trio.SocketStream(sock), sock)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        try:
            with trio.CancelScope(deadline=_deadline(timeout)) as scope:
                infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                return list(dict.fromkeys(str(info[4][0]) for info in infos))
        except (OSError, UnicodeError, ValueError) as exc:
            raise ConnectError(f"Could not resolve {host}: {exc}") from exc
        assert scope.cancelled_caught
        raise ConnectTimeout(f"Timed out resolving {host}")
