"""A connection to one origin that opens itself on first use and picks its protocol.

Theory of operation: the pool creates these cheaply (no I/O) and hands each to exactly
one request. That request opens the network stream (TCP or a Unix socket, retried
``retries`` times with exponential back-off on connect failures), upgrades to TLS for
https, and reads the ALPN result to choose HTTP/2 or HTTP/1.1 (``http1=False`` means
HTTP/2 with prior knowledge, also over plain TCP). From then on every call is delegated
to the protocol connection. ``h2`` is an optional dependency, imported only when HTTP/2
is asked for, so HTTP/1.1 works without it. The owner may pass ``on_connected``: it is
called once the protocol is known (or connecting failed), which is when a pool can hand
the connection more requests. The connect timeout is a deadline for the whole connect
(TCP, then any proxy handshake, then TLS). Proxy connections are subclasses that aim the
TCP connection at the proxy (``_remote``) and do their handshake in ``_establish``.
"""

from __future__ import annotations

import ssl
import time
import typing
from collections.abc import Callable, Iterable

from .. import _trace
from .._backends.base import AsyncNetworkBackend, AsyncNetworkStream, SocketOption
from .._config import default_ssl_context, time_left
from .._exceptions import ConnectError, ConnectionNotAvailable, ConnectTimeout, UnsupportedProtocol
from .._library import current_async_library
from .._models import Origin, Request, Response
from .http11 import AsyncHTTP11Connection
from .interfaces import AsyncConnectionInterface
from .tracing import complete_or_close, start_tls_traced, traced

__all__ = ["AsyncHTTPConnection"]

RETRY_BACKOFF = 0.5


def alpn_protocols(http1: bool, http2: bool) -> tuple[str, ...]:
    """The ALPN identifiers to offer for this protocol choice, preferred first."""
    if http2:
        require_h2()
        return ("h2", "http/1.1") if http1 else ("h2",)
    return ("http/1.1",)


def require_h2() -> None:
    """Raise UnsupportedProtocol unless the optional ``h2`` package is installed."""
    try:
        import h2  # noqa: F401
    except ImportError:
        raise UnsupportedProtocol(
            "HTTP/2 needs the 'h2' package: install it with 'pip install httpcore[http2]'"
        ) from None


class AsyncHTTPConnection(AsyncConnectionInterface):
    """Opens itself on the first request, then delegates to HTTP/1.1 or HTTP/2."""

    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
        network_backend: AsyncNetworkBackend | None = None,
        on_connected: Callable[[AsyncConnectionInterface], None] | None = None,
    ) -> None:
        if not (http1 or http2):
            raise UnsupportedProtocol("At least one of http1 and http2 must be enabled")
        if http2:
            require_h2()
        self.origin = origin
        # Where the TCP connection goes: the origin here, the proxy in subclasses.
        self._remote = (origin.host.decode("ascii"), origin.port)
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._http1 = http1
        self._http2 = http2
        self._retries = retries
        self._local_address = local_address
        self._uds = uds
        self._socket_options = socket_options
        # The running library's backend, chosen once for the connection's lifetime.
        self._backend = network_backend or current_async_library().backend
        self._connection: AsyncConnectionInterface | None = None
        self._on_connected = on_connected
        self._connecting = False
        self._failed = False

    async def handle_async_request(self, request: Request) -> Response:
        connection = self._connection
        if connection is None:
            if self._connecting or self._failed:
                raise ConnectionNotAvailable()
            self._connecting = True
            try:
                connection = await self._connect(request)
                if self._failed:  # closed while connecting: its owner has let it go
                    await connection.aclose()
                    raise ConnectError("The connection was closed while it was being opened")
                self._connection = connection
            except BaseException:
                self._failed = True
                raise
            finally:
                self._connecting = False
                if self._on_connected is not None:
                    self._on_connected(self)
        return await connection.handle_async_request(request)

    async def _connect(self, request: Request) -> AsyncConnectionInterface:
        extensions = request.extensions
        timeouts = extensions.get("timeout") or {}
        trace = extensions.get("trace")
        stream, deadline = await self._open_stream(timeouts.get("connect"), trace)
        origin = self.origin
        try:
            # From here on the socket is ours alone: whatever fails, or cancels us in a
            # trace callback, must close it.
            stream = await self._establish(stream, request, deadline)
            http2 = self._http2 and not self._http1
            if origin.scheme == b"https":
                server_hostname = extensions.get("sni_hostname") or origin.host.decode("ascii")
                stream = await self._start_tls(stream, server_hostname, time_left(deadline), trace)
                ssl_object = stream.get_extra_info("ssl_object")
                if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                    http2 = True
            if http2:
                try:
                    from .http2 import AsyncHTTP2Connection
                except ImportError:
                    raise UnsupportedProtocol(
                        "The server chose HTTP/2 but the 'h2' package is not installed"
                    ) from None
                return AsyncHTTP2Connection(origin, stream, self._keepalive_expiry)
            return AsyncHTTP11Connection(origin, stream, self._keepalive_expiry)
        except BaseException:
            await stream.aclose()
            raise

    async def _open_stream(
        self, timeout: float | None, trace: typing.Any
    ) -> tuple[AsyncNetworkStream, float | None]:
        """TCP (or the Unix socket) to ``self._remote``, retried on connect failures; also
        the deadline of the whole connect, which starts with the attempt that succeeded."""
        host, port = self._remote
        delay = 0.0
        retries = self._retries
        step = _trace.CONNECT_TCP if self._uds is None else _trace.CONNECT_UNIX_SOCKET
        while True:
            if trace is not None:
                await trace(step + _trace.STARTED, self._connect_info(host, port, timeout))
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                if self._uds is not None:
                    stream = await self._backend.connect_unix_socket(self._uds, timeout, self._socket_options)
                else:
                    stream = await self._backend.connect_tcp(
                        host, port, timeout, self._local_address, self._socket_options
                    )
                break
            except BaseException as exc:
                if trace is not None:
                    await trace(step + _trace.FAILED, {"exception": exc})
                if retries <= 0 or not isinstance(exc, (ConnectError, ConnectTimeout)):
                    raise
                retries -= 1
                if trace is None:
                    await self._backend.sleep(delay)
                else:
                    await traced(trace, _trace.RETRY, {"delay": delay}, self._backend.sleep, delay)
                delay = RETRY_BACKOFF if not delay else delay * 2
        if trace is not None:
            await complete_or_close(trace, step, stream)
        return stream, deadline

    def _connect_info(self, host: str, port: int, timeout: float | None) -> dict[str, typing.Any]:
        """What a traced connect reports as its arguments (httpcore 1.x's keys)."""
        if self._uds is not None:
            return {"path": self._uds, "timeout": timeout, "socket_options": self._socket_options}
        return {
            "host": host,
            "port": port,
            "local_address": self._local_address,
            "timeout": timeout,
            "socket_options": self._socket_options,
        }

    async def _establish(
        self, stream: AsyncNetworkStream, request: Request, deadline: float | None
    ) -> AsyncNetworkStream:
        """What a route does on the open stream before TLS to the origin (a proxy's
        handshake, by subclasses); a direct connection has nothing to do. If it raises,
        the caller closes the stream."""
        return stream

    async def _start_tls(
        self, stream: AsyncNetworkStream, server_hostname: str, timeout: float | None, trace: typing.Any
    ) -> AsyncNetworkStream:
        context = self._ssl_context
        if context is None:
            context = default_ssl_context(alpn_protocols(self._http1, self._http2))
        if trace is None:
            return await stream.start_tls(context, server_hostname, timeout)
        return await start_tls_traced(trace, stream, context, server_hostname, timeout)

    def capacity(self) -> int:
        connection = self._connection
        return 1 if connection is None else connection.capacity()

    def has_expired(self) -> bool:
        connection = self._connection
        if connection is None:
            return self._failed
        return connection.has_expired()

    def is_closed(self) -> bool:
        connection = self._connection
        if connection is None:
            return self._failed
        return connection.is_closed()

    async def aclose(self) -> None:
        self._failed = self._connection is None or self._failed
        if self._connection is not None:
            await self._connection.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.origin}] {self._connection!r}>"
