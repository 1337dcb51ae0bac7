"""The blocking backend: plain sockets, with the deadline set per call.

Theory of operation: each read or write sets its timeout only when it differs from the
last one set, so steady traffic makes no extra system calls. On Linux a plain socket
stays in blocking mode and the kernel keeps its timeouts (``SO_RCVTIMEO`` for reads,
``SO_SNDTIMEO`` for writes): a read is one ``recv``, where Python's own timeout mode
would ``poll`` before every ``recv`` and ``send``, two more system calls per request.
An idle connection's liveness is one zero-timeout ``poll`` when it is checked out.

TLS is the standard library's ``SSLSocket`` (``SyncTLSStream``), kept in non-blocking
mode. HTTP/2 reads in one thread while another writes, and CPython lets go of the GIL
inside ``SSL_read``/``SSL_write``, but OpenSSL allows one call at a time into a session:
two at once corrupt it (the peer sees a bad record MAC, we see EOF). So every call into
the session is made under a lock, and none of them can wait there: when the session
wants the socket readable or writable, the caller ``poll``s for it outside the lock
and tries again. The timeout is a deadline for the call, set at its first wait.
"""

from __future__ import annotations

import math
import select
import socket
import ssl
import struct
import sys
import threading
import time
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
from .base import NetworkBackend, NetworkStream, SocketOption, apply_socket_options
from .tls_in_tls import TLSInTLSStream

__all__ = ["SyncBackend", "SyncStream", "SyncTLSStream"]

_UNSET: typing.Any = object()
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
# What a TLS session that cannot go on needs of the socket. A read may need to write
# (and a write to read) when the peer starts a new handshake or a key update.
_POLL_FOR: dict[type[ssl.SSLError], int] = {
    ssl.SSLWantReadError: select.POLLIN,
    ssl.SSLWantWriteError: select.POLLOUT,
}
_WANTS_SOCKET = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _timeval(timeout: float | None) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO, where zero means no timeout: a
    timeout of zero or less becomes the shortest there is, never none."""
    if timeout is None:
        return struct.pack("ll", 0, 0)
    micro = max(math.ceil(timeout * 1_000_000), 1)
    return struct.pack("ll", *divmod(micro, 1_000_000))


class SyncStream(NetworkStream):
    """A stream over a blocking socket (plain or ``SSLSocket``)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._kernel_timeouts = _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket)
        if self._kernel_timeouts:
            sock.settimeout(None)  # blocking mode; the timeouts are set on the socket below
        self._read_timeout: float | None = _UNSET
        self._write_timeout: float | None = _UNSET
        self._poller: select.poll | None = None

    def _set_timeout(self, option: int, timeout: float | None) -> None:
        if self._kernel_timeouts:
            self._sock.setsockopt(socket.SOL_SOCKET, option, _timeval(timeout))
            if option == socket.SO_RCVTIMEO:
                self._read_timeout = timeout
            else:
                self._write_timeout = timeout
        else:  # one timeout for both directions
            self._sock.settimeout(timeout)
            self._read_timeout = self._write_timeout = timeout

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout != self._read_timeout:
                self._set_timeout(socket.SO_RCVTIMEO, timeout)
            return self._sock.recv(max_bytes)
        except (TimeoutError, BlockingIOError) as exc:  # BlockingIOError: the kernel's timeout
            raise ReadTimeout("Timed out reading from the server") from exc
        except (OSError, ValueError) as exc:
            raise ReadError(str(exc) or repr(exc)) from exc

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Send all of ``data`` within ``timeout``: a deadline for the whole write, where
        the socket's own timeout would start again after every partial send."""
        try:
            if timeout != self._write_timeout:
                self._set_timeout(socket.SO_SNDTIMEO, timeout)
            sock = self._sock
            start = time.monotonic()
            sent = sock.send(data)
            if sent == len(data):
                return
            if timeout is None:
                sock.sendall(memoryview(data)[sent:])
                return
            deadline = start + timeout
            view = memoryview(data)[sent:]
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._set_timeout(socket.SO_SNDTIMEO, remaining)
                view = view[sock.send(view) :]
        except (TimeoutError, BlockingIOError) as exc:
            raise WriteTimeout("Timed out writing to the server") from exc
        except (OSError, ValueError) as exc:
            raise WriteError(str(exc) or repr(exc)) from exc

    def close(self) -> None:
        try:
            # shutdown() first: close() alone leaves a thread blocked in recv() on this
            # socket (another HTTP/2 stream's reader) waiting out its read timeout.
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:  # pragma: no cover
            pass

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        if isinstance(self._sock, ssl.SSLSocket):  # TLS in TLS (an https:// proxy's tunnel)
            return TLSInTLSStream.handshake(self, ssl_context, server_hostname, timeout)
        try:
            if self._kernel_timeouts:
                # Back to Python's timeout mode for the handshake.
                for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                    self._sock.setsockopt(socket.SOL_SOCKET, option, _timeval(None))
            self._sock.settimeout(timeout)
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self.close()
            raise ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ssl.CertificateError, ValueError) as exc:
            self.close()
            raise ConnectError(str(exc) or repr(exc)) from exc
        return SyncTLSStream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr" or info == "server_addr":
            try:
                return self._sock.getsockname() if info == "client_addr" else self._sock.getpeername()
            except OSError:  # closed (or never connected): no address, and no bare OSError
                return None
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return self.is_readable()
        return None

    def is_readable(self) -> bool:
        sock = self._sock
        try:
            poller = self._poller
            if poller is None:
                # Made once per connection: a checkout then costs one poll() call.
                poller = self._poller = select.poll()
                poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True


class SyncTLSStream(SyncStream):
    """A stream over a non-blocking ``SSLSocket``: one thread may read while another
    writes, their calls into the TLS session taking turns (see the module docstring)."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(sock)
        sock.settimeout(0.0)
        self._session_lock = threading.Lock()
        # One poll object per direction of the caller: two threads may wait at once, and
        # a poll object refuses concurrent use.
        self._read_poller = select.poll()
        self._write_poller = select.poll()

    def _wait(
        self, poller: select.poll, events: int, timeout: float | None, deadline: float | None
    ) -> float | None:
        """Outside the lock: wait until the socket can do what the session asked for, or
        raise ``TimeoutError``. Returns the deadline, set on the first wait of a call."""
        poller.register(self._sock, events)
        if timeout is None:
            poller.poll()
            return None
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout
        if now >= deadline or not poller.poll(math.ceil((deadline - now) * 1000)):
            raise TimeoutError
        return deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        sock, lock, deadline = self._sock, self._session_lock, None
        try:
            while True:
                with lock:
                    try:
                        return sock.recv(max_bytes)
                    except _WANTS_SOCKET as exc:
                        events = _POLL_FOR[type(exc)]
                deadline = self._wait(self._read_poller, events, timeout, deadline)
        except TimeoutError as exc:
            raise ReadTimeout("Timed out reading from the server") from exc
        except (OSError, ValueError) as exc:
            raise ReadError(str(exc) or repr(exc)) from exc

    def write(self, data: bytes, timeout: float | None = None) -> None:
        sock, lock, deadline = self._sock, self._session_lock, None
        view = memoryview(data)
        try:
            while view:
                with lock:
                    try:
                        view = view[sock.send(view) :]
                        continue
                    except _WANTS_SOCKET as exc:
                        events = _POLL_FOR[type(exc)]
                deadline = self._wait(self._write_poller, events, timeout, deadline)
        except TimeoutError as exc:
            raise WriteTimeout("Timed out writing to the server") from exc
        except (OSError, ValueError) as exc:
            raise WriteError(str(exc) or repr(exc)) from exc

    def close(self) -> None:
        # The plain socket's shutdown: ``SSLSocket.shutdown`` would drop the session
        # under a thread still reading, which would then take TLS records for data.
        try:
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        except OSError:
            pass
        with self._session_lock:
            try:
                self._sock.close()
            except OSError:  # pragma: no cover
                pass

    def is_readable(self) -> bool:
        with self._session_lock:
            if typing.cast(ssl.SSLSocket, self._sock).pending():
                return True
        return super().is_readable()


class SyncBackend(NetworkBackend):
    """Opens blocking sockets, with TCP_NODELAY set."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> SyncStream:
        source = None if local_address is None else (local_address, 0)
        try:
            if socket_options:
                sock = self._connect_with_options(host, port, timeout, source, socket_options)
            else:
                sock = socket.create_connection((host, port), timeout, source_address=source)
        except TimeoutError as exc:
            raise ConnectTimeout(f"Timed out connecting to {host}:{port}") from exc
        except (OSError, UnicodeError, ValueError) as exc:
            raise ConnectError(str(exc) or repr(exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return SyncStream(sock)

    def _connect_with_options(
        self,
        host: str,
        port: int,
        timeout: float | None,
        source: tuple[str, int] | None,
        socket_options: Iterable[SocketOption],
    ) -> socket.socket:
        last_error: OSError | None = None
        for family, type_, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, type_, proto)
            try:
                apply_socket_options(sock, socket_options)
                sock.settimeout(timeout)
                if source is not None:
                    sock.bind(source)
                sock.connect(address)
            except OSError as exc:
                sock.close()
                if isinstance(exc, (socket.timeout, TimeoutError)):
                    raise
                last_error = exc
                continue
            return sock
        raise last_error or OSError(f"No address found for {host}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> SyncStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            apply_socket_options(sock, socket_options)
            sock.settimeout(timeout)
            sock.connect(path)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeout(f"Timed out connecting to {path}") from exc
        except OSError as exc:
            sock.close()
            raise ConnectError(str(exc) or repr(exc)) from exc
        return SyncStream(sock)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        # getaddrinfo() takes no timeout: with one, it runs in a daemon thread that is
        # left behind (to finish on its own) when the deadline passes.
        result: list[typing.Any] = []

        def lookup() -> None:
            try:
                result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except (OSError, UnicodeError, ValueError) as exc:
                result.append(exc)

        if timeout is None:
            lookup()
        else:
            thread = threading.Thread(target=lookup, name="httpcore-resolve", daemon=True)
            thread.start()
            thread.join(max(timeout, 0.0))
        if not result:
            raise ConnectTimeout(f"Timed out resolving {host}")
        outcome = result[0]
        if isinstance(outcome, BaseException):
            raise ConnectError(f"Could not resolve {host}: {outcome}") from outcome
        return list(dict.fromkeys(str(info[4][0]) for info in outcome))
