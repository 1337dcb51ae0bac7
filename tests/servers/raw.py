"""A fault-injection TCP server: scripted bytes instead of a real HTTP stack.

Theory of operation: ``RawServer`` owns a listening socket and one accept
thread.  The accept thread blocks in a selector on the listener plus a
wake-up socketpair (so ``stop()`` interrupts it without polling), and starts
one daemon thread per accepted connection that calls the user's *handler*
with a ``RawConnection``.  The handler decides, byte by byte, what the client
sees: a correct response, a truncated one, a slow trickle, a TCP reset, ...

Robustness rules:

* every blocking socket operation has a timeout (the server's ``timeout`` by
  default, or the deadline given to the read helpers);
* ``OSError`` escaping a handler (client went away, reset, timeout, TLS
  failure, server stopping) is swallowed silently; any other exception is
  swallowed too but appended to ``server.errors`` so tests can assert on it;
* when the handler returns, the connection is closed gracefully if the handler
  did not close it already;
* ``stop()`` wakes everything up: it sets a stop event (``conn.sleep`` and
  ``send_slowly`` wait on it), closes the listener and shuts down every live
  socket, so blocked ``recv``/``send`` calls fail at once; then it joins the
  threads with a bounded timeout.  Handlers should use ``conn.sleep`` rather
  than ``time.sleep``.

With an ``ssl_context`` the accepted socket is wrapped server-side and the
TLS handshake runs in the connection thread (a failed handshake, e.g. a client
rejecting the certificate, just ends that connection).

``read_request`` parses just enough HTTP/1.1 framing (head, then a
content-length or chunked body) to know where a request ends; it returns the
raw bytes undecoded and records them in ``server.requests``.
"""

from __future__ import annotations

import http
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from .netutil import bind_listener, format_url

if TYPE_CHECKING:
    from typing import Self  # 3.11+, but only ever imported by type checkers

__all__ = [
    "Handler",
    "RawConnection",
    "RawServer",
    "RawServerFactory",
    "Fault",
    "chunked",
    "good_or",
    "good_token",
    "keep_alive",
    "ok",
    "per_connection",
    "response",
    "scripted",
]

Handler = Callable[["RawConnection"], None]
# A fault answers one request (already read) however it likes; True keeps serving.
Fault = Callable[["RawConnection", bytes], bool]

IDLE_TIMEOUT = 30.0  # how long the ready-made handlers wait for a next request
_MAX_HEAD = 1 << 20
_RECV_SIZE = 65536
_STOP_TIMEOUT = 5.0


class RawConnection:
    """One accepted connection, as seen by a handler."""

    def __init__(self, server: RawServer, sock: socket.socket, index: int, address: object) -> None:
        self.server = server
        self.sock = sock
        self.index = index  # 0-based accept order
        self.address = address  # the client's address
        self._buffer = bytearray()  # bytes received but not consumed yet
        self._closed = False

    # -- reading ---------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Receive more bytes into the buffer; False on EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("raw server: read timed out")
        self.sock.settimeout(remaining)
        data = self.sock.recv(_RECV_SIZE)
        self._buffer += data
        return bool(data)

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buffer) < n:
            if not self._fill(deadline):
                raise ConnectionError("raw server: EOF inside request body")
        return self._take(n)

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if not self._fill(deadline):
                raise ConnectionError("raw server: EOF inside chunked body")
        return self._take(end + 2)

    def recv(self, max_bytes: int = _RECV_SIZE, timeout: float | None = None) -> bytes:
        """Raw read: buffered bytes first, else one ``recv``; b"" on EOF."""
        if not self._buffer:
            self._fill(time.monotonic() + (self.server.timeout if timeout is None else timeout))
        return self._take(max_bytes)

    def read_head(self, timeout: float = 5.0) -> bytes | None:
        """Bytes up to and including the first CRLFCRLF; None on EOF before any byte."""
        deadline = time.monotonic() + timeout
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise ValueError("raw server: request head too large")
            if not self._fill(deadline):
                if not self._buffer:
                    return None
                raise ConnectionError("raw server: EOF inside request head")
        return self._take(end + 4)

    def read_body(self, head: bytes, timeout: float = 5.0) -> bytes:
        """The raw body that follows ``head`` (content-length or chunked framing)."""
        deadline = time.monotonic() + timeout
        content_length: int | None = None
        is_chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                is_chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"content-length" and content_length is None:
                content_length = int(value.strip())
        if is_chunked:
            return self._read_chunked(deadline)
        return self._read_exact(content_length or 0, deadline)

    def _read_chunked(self, deadline: float) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._read_line(deadline)
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            parts.append(self._read_exact(size + 2, deadline))  # data + CRLF
        while True:  # trailer section, ends with an empty line
            line = self._read_line(deadline)
            parts.append(line)
            if line == b"\r\n":
                return b"".join(parts)

    def read_request(self, timeout: float = 5.0) -> bytes | None:
        """One full raw request (head + body), recorded in ``server.requests``.

        None on a clean EOF before any byte.  Raises ``TimeoutError`` when the
        request is not complete within ``timeout`` seconds, ``ConnectionError``
        on EOF in the middle of it.
        """
        deadline = time.monotonic() + timeout
        head = self.read_head(timeout)
        if head is None:
            return None
        request = head + self.read_body(head, max(0.0, deadline - time.monotonic()))
        self.server._record(request)
        return request

    # -- writing ---------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.server.timeout)
        self.sock.sendall(data)

    def send_slowly(self, data: bytes, chunk: int = 1, delay: float = 0.01) -> None:
        """Send ``data`` in ``chunk``-byte pieces with ``delay`` seconds between them."""
        for start in range(0, len(data), chunk):
            if start:
                self.sleep(delay)
            self.send(data[start : start + chunk])

    def sleep(self, seconds: float) -> None:
        """Like ``time.sleep`` but raises ``ConnectionAbortedError`` as soon as
        the server stops."""
        if self.server._stopping.wait(seconds):
            raise ConnectionAbortedError("raw server: stopping")

    # -- closing ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, linger: float = 1.0) -> None:
        """Graceful close: TLS close_notify (if TLS), FIN, then drain what the
        client still sends for up to ``linger`` seconds, so that unread input
        does not turn the close into a reset that could destroy our output."""
        if self._closed:
            return
        self._closed = True
        sock = self.sock
        try:
            if isinstance(sock, ssl.SSLSocket):
                with suppress(OSError, ValueError):
                    sock.setblocking(False)  # send close_notify, do not await the peer's
                    sock.unwrap()
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_WR)
                deadline = time.monotonic() + linger
                while (remaining := deadline - time.monotonic()) > 0:
                    sock.settimeout(remaining)
                    if not socket.socket.recv(sock, _RECV_SIZE):
                        break
        finally:
            sock.close()

    def reset(self) -> None:
        """Abortive close: SO_LINGER(on, 0) then close, so the peer gets a TCP RST."""
        if self._closed:
            return
        self._closed = True
        try:
            with suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.sock.close()

    def shutdown_write(self) -> None:
        """Half-close: send a TCP FIN (no TLS close_notify), keep reading."""
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def _abort(self) -> None:
        """From another thread: make any blocked send/recv fail immediately."""
        with suppress(OSError, ValueError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


class RawServer:
    """Serve each accepted connection with ``handler`` in its own thread."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.handler = handler
        self.host = host
        self.ssl_context = ssl_context
        self.timeout = timeout  # default timeout of every socket operation
        self.port = 0
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []  # unexpected (non-OSError) handler failures
        self._lock = threading.Lock()
        self._accepted_changed = threading.Condition(self._lock)
        self._accepted = 0
        self._live: dict[int, RawConnection] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("raw server not started")
        return format_url("https" if self.ssl_context else "http", self.host, self.port)

    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._accepted

    def wait_for_connections(self, n: int, timeout: float = 5.0) -> bool:
        """Block until ``n`` connections have been accepted; False on timeout."""
        with self._accepted_changed:
            return self._accepted_changed.wait_for(lambda: self._accepted >= n, timeout)

    def _record(self, request: bytes) -> None:
        with self._lock:
            self.requests.append(request)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        if self._listener is not None:
            raise RuntimeError("raw server already started")
        self._listener = bind_listener(self.host)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop,
            args=(self._listener, self._wake_r),
            name=f"RawServer-{self.port}-accept",
            daemon=True,
        )
        self._accept_thread.start()

    def stop(self) -> None:
        if self._listener is None or self._stopping.is_set():
            return
        self._stopping.set()
        assert self._wake_w is not None and self._wake_r is not None
        assert self._accept_thread is not None
        with suppress(OSError):
            self._wake_w.send(b"x")
        self._accept_thread.join(_STOP_TIMEOUT)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        with self._lock:
            live = list(self._live.values())
            threads = list(self._threads)
        for conn in live:
            conn._abort()
        deadline = time.monotonic() + _STOP_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RawServer {self.url if self.port else 'not started'}>"

    # -- threads ---------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is wake:
                        return
                    try:
                        sock, address = listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue
                    except OSError:
                        return
                    self._spawn(sock, address)

    def _spawn(self, sock: socket.socket, address: object) -> None:
        sock.settimeout(self.timeout)
        if self.ssl_context is not None:
            try:  # no I/O here: the handshake happens in the connection thread
                sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError:
                sock.close()
                return
        with self._lock:
            if self._stopping.is_set():
                sock.close()
                return
            conn = RawConnection(self, sock, self._accepted, address)
            self._accepted += 1
            self._accepted_changed.notify_all()
            self._live[conn.index] = conn
            thread = threading.Thread(
                target=self._serve,
                args=(conn,),
                name=f"RawServer-{self.port}-conn{conn.index}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()

    def _serve(self, conn: RawConnection) -> None:
        try:
            if isinstance(conn.sock, ssl.SSLSocket):
                conn.sock.do_handshake()
            self.handler(conn)
        except OSError:  # client went away, timeout, TLS failure, server stopping
            pass
        except Exception as exc:  # noqa: BLE001 - a handler bug: keep it for the test to see
            with self._lock:
                self.errors.append(exc)
        finally:
            with suppress(OSError):
                conn.close(linger=0.0 if self._stopping.is_set() else 1.0)
            with self._lock:
                self._live.pop(conn.index, None)


class RawServerFactory(Protocol):
    """Type of the ``raw_server`` fixture: builds, starts and tracks a server."""

    def __call__(
        self,
        handler: Handler,
        *,
        host: str = ...,
        ssl_context: ssl.SSLContext | None = ...,
        timeout: float = ...,
    ) -> RawServer: ...


# -- ready-made handlers ---------------------------------------------------


def scripted(*responses: bytes, close_after: bool = True) -> Handler:
    """Answer the n-th request of each connection with ``responses[n]``.

    After the last response: close the connection if ``close_after``, else keep
    it open, reading (and recording) further requests without answering them,
    until the client closes or the server stops.
    """

    def handler(conn: RawConnection) -> None:
        for item in responses:
            if conn.read_request(IDLE_TIMEOUT) is None:
                return
            conn.send(item)
        if close_after:
            conn.close()
            return
        while conn.read_request(IDLE_TIMEOUT) is not None:
            pass

    return handler


def per_connection(*handlers: Handler) -> Handler:
    """Connection i is served by ``handlers[i]``; the last one repeats."""
    if not handlers:
        raise ValueError("per_connection() needs at least one handler")

    def handler(conn: RawConnection) -> None:
        handlers[min(conn.index, len(handlers) - 1)](conn)

    return handler


def keep_alive(response: bytes) -> Handler:
    """Answer every request of the connection with ``response`` until EOF."""

    def handler(conn: RawConnection) -> None:
        while conn.read_request(IDLE_TIMEOUT) is not None:
            conn.send(response)

    return handler


def good_token(request: bytes) -> bytes | None:
    """``<token>`` for a ``GET /good/<token>`` (b"" for ``GET /good``), else None."""
    method, _, rest = request.partition(b" ")
    target = rest.partition(b" ")[0]
    if method != b"GET" or not (target == b"/good" or target.startswith(b"/good/")):
        return None
    return target[6:]


def good_or(fault: Fault | None = None) -> Handler:
    """Keep-alive: ``GET /good/<token>`` gets ``200`` with body ``good:<token>`` (so a
    response handed to the wrong request shows), any other request goes to ``fault``
    (404 without one); the connection ends when ``fault`` returns False."""

    def handler(conn: RawConnection) -> None:
        while (request := conn.read_request(IDLE_TIMEOUT)) is not None:
            token = good_token(request)
            if token is not None:
                conn.send(ok(b"good:" + token))
            elif fault is None:
                conn.send(response(404))
            elif not fault(conn, request):
                return

    return handler


# -- response builders -----------------------------------------------------


def response(
    status: int = 200,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    reason: bytes | None = None,
    content_length: bool = True,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """A raw response.  ``content_length=False`` leaves framing to ``headers``
    (e.g. pass a ``chunked(...)`` body with ``transfer-encoding: chunked``)."""
    if reason is None:
        try:
            reason = http.HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            reason = b"Unknown"
    lines = [b"%s %d %s" % (version, status, reason)]
    lines += [name + b": " + value for name, value in headers or []]
    if content_length:
        lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def ok(body: bytes = b"ok", headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """``HTTP/1.1 200 OK`` with ``headers``, a content-length and ``body``."""
    return response(200, body, headers)


def chunked(*chunks: bytes, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """Chunked transfer-coding of ``chunks`` (empty chunks are skipped)."""
    out = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c]
    out.append(b"0\r\n")
    out += [name + b": " + value + b"\r\n" for name, value in trailers or []]
    out.append(b"\r\n")
    return b"".join(out)
