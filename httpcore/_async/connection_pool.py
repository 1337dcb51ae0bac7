"""The connection pool: which connection serves which request, and nothing else.

Theory of operation. The pool never touches sockets or protocols; it asks a connection
factory for connections and drives them through ``AsyncConnectionInterface``. Its state
changes only in short synchronous sections under a state lock (free under asyncio and trio, a real
lock under threads, never held across I/O), and every change is incremental:

- ``_load`` maps every live connection to the number of requests it carries; its size
  is the number of connections counted against ``max_connections``.
- ``_available[origin]`` holds the connections to that origin that can take one more
  request (idle HTTP/1.1, or HTTP/2 under its stream limit); the most recently returned
  is reused first, so surplus connections age out.
- ``_idle`` holds the connections carrying nothing, oldest first: the ones evicted for
  ``max_keepalive_connections`` or to make room for another origin.
- ``_waiters`` is a FIFO of requests waiting for a connection. A released connection is
  handed to exactly one waiter; a freed slot becomes a new connection for the head.
  ``_queued[origin]`` indexes the same waiters by origin, so an HTTP/2 connection with
  free streams serves its own origin's waiters even when the head waits for another.
  Their pool timeouts share one loop timer (``_waiter_timeouts``), not a timer each.
- With HTTP/2 enabled, ``_connecting[origin]`` is a new connection whose protocol is not
  known yet: further requests to that origin wait for it (in ``_queued`` only, as they
  need no free slot) rather than open connections of their own. Once it knows
  (``_connection_ready``) it takes as many as its capacity allows and the rest get new
  connections, or join ``_waiters`` for a slot, so a burst to an HTTP/2 origin opens
  one. Origins that turned out to speak only HTTP/1.1 are remembered and skip the wait.

So a checkout or release costs O(1) whatever the number of connections and waiters. An
idle connection's liveness is checked only when it is checked out. A request that fails
on a reused connection before any response byte arrived is retried once on a new one
when its method is idempotent and its body can be sent again.
"""

from __future__ import annotations

import collections
import ssl
import typing
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from .._backends.base import AsyncNetworkBackend, SocketOption
from .._config import DEFAULT_LIMITS, DEFAULT_TIMEOUT, MAX_UNPROCESSED, Limits, Timeout
from .._exceptions import (
    ConnectionNotAvailable,
    HTTPCoreError,
    PoolClosed,
    PoolTimeout,
    RemoteProtocolError,
    StaleConnection,
    UnsupportedProtocol,
)
from .._library import current_async_library
from .._models import URL, ByteStream, HeaderTypes, Origin, Request, RequestContent, Response
from .._synchronization import AsyncStateLock, AsyncWaiter, AsyncWaiterTimeouts
from . import routes
from .connection import alpn_protocols, require_h2
from .interfaces import AsyncConnectionInterface

__all__ = ["AsyncConnectionPool"]

_UNSET: typing.Any = object()
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})
_HTTP1_ORIGINS_KEPT = 256
_CLOSED_IN_FLIGHT = "The connection pool was closed while the request was in flight"

ConnectionFactory = Callable[[Origin], AsyncConnectionInterface]


class AsyncConnectionPool:
    """A pool of connections shared by every request made through it."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        timeout: Timeout | float | None = _UNSET,
        limits: Limits | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        proxy: routes.ProxyArgument = None,
        local_address: str | None = None,
        uds: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
        *,
        max_connections: int | None = _UNSET,
        max_keepalive_connections: int | None = _UNSET,
        keepalive_expiry: float | None = _UNSET,
        network_backend: AsyncNetworkBackend | None = None,
        connection_factory: ConnectionFactory | None = None,
    ) -> None:
        if not (http1 or http2):
            raise UnsupportedProtocol("At least one of http1 and http2 must be enabled")
        if http2:
            require_h2()
        limits = limits or DEFAULT_LIMITS
        self._limits = Limits(
            limits.max_connections if max_connections is _UNSET else max_connections,
            limits.max_keepalive_connections
            if max_keepalive_connections is _UNSET
            else max_keepalive_connections,
            limits.keepalive_expiry if keepalive_expiry is _UNSET else keepalive_expiry,
        )
        self._timeout = DEFAULT_TIMEOUT if timeout is _UNSET else Timeout.coerce(timeout)
        self._timeout_extension = self._timeout.as_dict()
        self._max_connections = self._limits.max_connections or 2**62
        keepalive = self._limits.max_keepalive_connections
        self._max_idle = self._max_connections if keepalive is None else keepalive
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(list(alpn_protocols(http1, http2)))
        self._http2 = http2
        # The connection layer decides how origins are reached (directly or through the
        # proxy): ``_key`` files a request's URL under a pool key, ``_factory`` makes a
        # connection for a key.
        self._key, self._factory = routes.connection_factory(
            proxy,
            ssl_context=ssl_context,
            keepalive_expiry=self._limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            local_address=local_address,
            uds=uds,
            socket_options=socket_options,
            network_backend=network_backend,
            on_connected=self._connection_ready,
        )
        if connection_factory is not None:
            self._factory = connection_factory

        self._lock = AsyncStateLock()
        self._waiter_timeouts = AsyncWaiterTimeouts()
        self._load: dict[AsyncConnectionInterface, int] = {}
        self._available: dict[Origin, collections.OrderedDict[AsyncConnectionInterface, None]] = {}
        self._idle: collections.OrderedDict[AsyncConnectionInterface, None] = collections.OrderedDict()
        self._waiters: collections.OrderedDict[AsyncWaiter, None] = collections.OrderedDict()
        self._queued: dict[Origin, collections.OrderedDict[AsyncWaiter, None]] = {}
        self._connecting: dict[Origin, AsyncConnectionInterface] = {}
        self._http1_origins: collections.OrderedDict[Origin, None] = collections.OrderedDict()
        # Responses dropped unclosed, with their connections, queued by a finaliser that
        # must not take a lock (the garbage collector may run while this thread holds it).
        self._orphans: collections.deque[tuple[AsyncConnectionInterface, typing.Any]] = collections.deque()
        self._closed = False

    @property
    def connections(self) -> list[AsyncConnectionInterface]:
        """Every connection the pool holds now (for introspection)."""
        return list(self._load)

    # -- the public entry points -------------------------------------------------

    async def request(
        self,
        method: bytes | str,
        url: URL | bytes | str,
        *,
        headers: HeaderTypes = None,
        body: RequestContent = None,
        stream: bool = False,
        timeout: Timeout | float | dict[str, float | None] | None = _UNSET,
        extensions: dict[str, typing.Any] | None = None,
    ) -> Response:
        """Send one request. The body is read in full unless ``stream=True``, in which
        case the caller reads ``response.stream()`` and closes the response."""
        request = Request(method, url, headers=headers, content=body, extensions=extensions)
        if timeout is not _UNSET:
            request.extensions["timeout"] = Timeout.coerce(timeout).as_dict()
        if stream:
            return await self.handle_async_request(request)
        response, connection = await self._send(request)
        try:
            await response.aread()
        except HTTPCoreError as exc:
            if self._closed:
                raise PoolClosed("The connection pool was closed while the response was read") from exc
            raise
        finally:
            await self._release(connection)
        return response

    @asynccontextmanager
    async def stream(
        self,
        method: bytes | str,
        url: URL | bytes | str,
        *,
        headers: HeaderTypes = None,
        body: RequestContent = None,
        timeout: Timeout | float | dict[str, float | None] | None = _UNSET,
        extensions: dict[str, typing.Any] | None = None,
    ) -> AsyncIterator[Response]:
        """A streaming response, closed (and its connection released) on exit."""
        response = await self.request(
            method, url, headers=headers, body=body, stream=True, timeout=timeout, extensions=extensions
        )
        try:
            yield response
        finally:
            await response.aclose()

    async def handle_async_request(self, request: Request) -> Response:
        """Send a prepared request; the response body streams until closed or read."""
        response, connection = await self._send(request)
        stream = response._stream
        if stream is None:
            # The whole body came with the head: kept as it is (reading returns it and
            # only closes the stream), the connection held until the response is closed.
            response._stream = AsyncPoolResponseStream(ByteStream(response._body or b""), self, connection)
        else:
            response.stream = AsyncPoolResponseStream(stream, self, connection)
        return response

    async def aclose(self) -> None:
        """Close every connection and refuse further requests; waiters get PoolClosed."""
        with self._lock:
            self._closed = True
            connections = list(self._load)
            waiters = dict.fromkeys(self._waiters)
            for queue in self._queued.values():
                waiters.update(dict.fromkeys(queue))
            self._load.clear()
            self._available.clear()
            self._idle.clear()
            self._waiters.clear()
            self._queued.clear()
            self._connecting.clear()
            self._orphans.clear()
        for waiter in waiters:
            waiter.error = PoolClosed("The connection pool was closed while waiting")
            waiter.wake()
        await _close_all(connections)

    async def __aenter__(self) -> AsyncConnectionPool:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()

    # -- one request -----------------------------------------------------------------

    async def _send(self, request: Request) -> tuple[Response, AsyncConnectionInterface]:
        origin = self._key(request.url)
        extensions = request.extensions
        timeouts = extensions.get("timeout")
        if timeouts is None:
            extensions["timeout"] = timeouts = self._timeout_extension
        pool_timeout = timeouts.get("pool")
        fresh = False
        unprocessed = 0  # times a connection sent it back unprocessed (see MAX_UNPROCESSED)
        while True:
            to_close: list[AsyncConnectionInterface] = []
            waiter = None
            if self._orphans:
                await self._bury_orphans()
            with self._lock:
                if self._closed:
                    # Also ends a request whose connection close() took from under it.
                    raise PoolClosed("The connection pool is closed")
                connection = self._checkout(origin, fresh, to_close)
                if connection is None:
                    waiter = current_async_library().waiter(origin, fresh)
                    self._enqueue(waiter, needs_slot=origin not in self._connecting)
            if to_close:
                try:
                    await _close_all(to_close)
                except BaseException:  # cancelled: give back what was taken
                    if waiter is not None:
                        await self._abandon(waiter)
                    elif connection is not None:
                        await self._release(connection)
                    raise
            if waiter is not None:
                connection = await self._wait(waiter, pool_timeout)
            assert connection is not None
            try:
                try:
                    response = await connection.handle_async_request(request)
                finally:
                    if self._connecting:
                        # A connection made without our callback reports its protocol here.
                        self._connection_ready(connection)
            except BaseException as exc:
                await self._release(connection)
                if self._closed and isinstance(exc, HTTPCoreError):
                    # close() shut its connection: that, not the network, ended it.
                    raise PoolClosed(_CLOSED_IN_FLIGHT) from exc
                if isinstance(exc, ConnectionNotAvailable):
                    unprocessed += 1
                    if unprocessed > MAX_UNPROCESSED:
                        raise RemoteProtocolError(
                            f"The server sent the request back unprocessed {unprocessed} times in a row"
                            " (REFUSED_STREAM or GOAWAY): not sent again"
                        ) from None
                    continue  # to another connection (or PoolClosed, if close() came)
                if not isinstance(exc, StaleConnection):
                    raise
                reason = None if not fresh else "it was already retried once"
                if request.method not in _IDEMPOTENT:
                    reason = f"{request.method.decode('ascii')} is not idempotent"
                elif not (request.content is None or isinstance(request.content, bytes)):
                    reason = "its body is a stream that cannot be sent again"
                if reason is not None:
                    raise RemoteProtocolError(f"{exc}; the request was not retried because {reason}") from exc
                fresh = True
                continue
            return response, connection

    async def _wait(self, waiter: AsyncWaiter, timeout: float | None) -> AsyncConnectionInterface:
        """Wait, queued, until the pool grants ``waiter`` a connection."""
        try:
            woken = await waiter.wait(timeout, self._waiter_timeouts)
        except BaseException:
            await self._abandon(waiter)
            raise
        if waiter.error is not None:
            raise waiter.error
        if not woken:
            with self._lock:
                if waiter.connection is None:
                    self._dequeue(waiter)
                    raise PoolTimeout(
                        f"No connection to {waiter.origin} became free within {timeout} seconds"
                    )
        granted: AsyncConnectionInterface | None = waiter.connection
        assert granted is not None
        return granted

    async def _abandon(self, waiter: AsyncWaiter) -> None:
        """A waiter gave up (timeout or cancellation): dequeue it, or hand back what it
        was granted in the meantime."""
        with self._lock:
            if waiter.connection is None:
                self._dequeue(waiter)
                return
        if waiter.error is None:
            await self._release(waiter.connection)
            waiter.connection = None

    async def _release(self, connection: AsyncConnectionInterface) -> None:
        """A request on ``connection`` finished (or failed): take the connection back."""
        to_close: list[AsyncConnectionInterface] = []
        with self._lock:
            self._checkin(connection, to_close)
        if to_close:
            await _close_all(to_close)
        if self._orphans:
            await self._bury_orphans()

    async def _bury_orphans(self) -> None:
        """Responses the garbage collector finalised unclosed: close each one as its
        caller should have (HTTP/1.1 then closes its connection, which is mid-response;
        HTTP/2 resets just that stream), then take its connection back."""
        orphans = self._orphans
        while orphans:
            try:
                connection, stream = orphans.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                await stream.aclose()
            except HTTPCoreError:
                pass  # the connection failed: _release sees it closed
            finally:
                await self._release(connection)

    # -- bookkeeping, always under the state lock, never any I/O ---------------------

    def _checkout(
        self, origin: Origin, fresh: bool, to_close: list[AsyncConnectionInterface]
    ) -> AsyncConnectionInterface | None:
        available = None if fresh else self._available.get(origin)
        load = self._load
        while available:
            connection = next(reversed(available))
            count = load[connection]
            if count == 0 and connection.has_expired():
                self._drop(connection)
                to_close.append(connection)
                continue
            count += 1
            load[connection] = count
            if count == 1:
                self._idle.pop(connection, None)
            if count >= connection.capacity():
                del available[connection]
            return connection
        if origin in self._connecting:
            return None  # wait for its protocol: if HTTP/2, it carries this request too
        if len(load) >= self._max_connections:
            if not self._idle or self._waiters:
                return None
            victim = next(iter(self._idle))
            self._drop(victim)
            to_close.append(victim)
        connection = self._factory(origin)
        load[connection] = 1
        if self._http2 and origin not in self._http1_origins:
            self._connecting[origin] = connection
        return connection

    def _checkin(
        self, connection: AsyncConnectionInterface, to_close: list[AsyncConnectionInterface]
    ) -> None:
        load = self._load
        count = load.get(connection)
        if count is None:  # already dropped: the pool was closed under it
            return
        count -= 1
        if connection.is_closed():
            self._drop(connection)
            self._grant_new_connection()
            return
        origin = connection.origin
        capacity = connection.capacity()
        if capacity == 0 and count == 0:
            # Open, but taking no request (HTTP/2 with the server's stream limit at 0):
            # kept, it would hold its slot for ever.
            self._drop(connection)
            to_close.append(connection)
            self._grant_new_connection()
            return
        waiters = self._waiters
        while waiters and count < capacity:
            head = next(iter(waiters))
            if head.origin != origin or head.fresh:
                # HTTP/2 streams free: this origin's waiters need no new connection, so
                # they need not wait behind a head that does.
                queue = self._queued.get(origin) if capacity > 1 else None
                if queue and not next(iter(queue)).fresh:
                    head = next(iter(queue))
                elif count == 0:
                    # Strict FIFO: an idle connection the head cannot use makes way for one it can.
                    self._drop(connection)
                    to_close.append(connection)
                    self._grant_new_connection()
                    return
                else:
                    break
            self._dequeue(head)
            count += 1
            head.connection = connection
            head.wake()
        load[connection] = count
        if count < capacity:
            self._make_available(connection)
            if count == 0:
                idle = self._idle
                idle[connection] = None
                if len(idle) > self._max_idle:
                    victim, _ = idle.popitem(last=False)
                    self._drop(victim)
                    to_close.append(victim)

    def _grant_new_connection(self) -> None:
        """A slot came free: the head waiter gets a new connection of its own."""
        if self._waiters and len(self._load) < self._max_connections:
            waiter = next(iter(self._waiters))
            self._dequeue(waiter)
            connection = self._factory(waiter.origin)
            self._load[connection] = 1
            waiter.connection = connection
            waiter.wake()

    def _enqueue(self, waiter: AsyncWaiter, needs_slot: bool) -> None:
        if needs_slot:
            self._waiters[waiter] = None
        queue = self._queued.get(waiter.origin)
        if queue is None:
            queue = self._queued[waiter.origin] = collections.OrderedDict()
        queue[waiter] = None

    def _dequeue(self, waiter: AsyncWaiter) -> None:
        self._waiters.pop(waiter, None)
        queue = self._queued.get(waiter.origin)
        if queue is not None:
            queue.pop(waiter, None)
            if not queue:
                del self._queued[waiter.origin]

    def _connection_ready(self, connection: AsyncConnectionInterface) -> None:
        """A connection others waited on knows its protocol (or failed to connect): it
        takes as many of its origin's waiters as it can carry, the rest get connections
        of their own. Called by the connection itself once connected, else by ``_send``."""
        with self._lock:
            origin = connection.origin
            if self._connecting.get(origin) is not connection:
                return
            del self._connecting[origin]
            count = self._load.get(connection)
            if count is None:  # pragma: no cover - the pool was closed meanwhile
                return
            capacity = 0 if connection.is_closed() else connection.capacity()
            if capacity == 1:
                known = self._http1_origins
                known[origin] = None
                if len(known) > _HTTP1_ORIGINS_KEPT:
                    known.popitem(last=False)
            queue = self._queued.get(origin)
            while queue and count < capacity:
                waiter = next(iter(queue))
                self._dequeue(waiter)
                count += 1
                waiter.connection = connection
                waiter.wake()
            self._load[connection] = count
            if count < capacity:
                self._make_available(connection)
            while queue:
                if len(self._load) >= self._max_connections:
                    for waiter in queue:
                        self._waiters[waiter] = None  # now they wait for a free slot
                    break
                waiter = next(iter(queue))
                self._dequeue(waiter)
                new = self._factory(origin)
                self._load[new] = 1
                waiter.connection = new
                waiter.wake()
                if capacity > 1:
                    # HTTP/2 past its stream limit: the others wait for this one too.
                    self._connecting[origin] = new
                    break

    def _make_available(self, connection: AsyncConnectionInterface) -> None:
        """It can take another request: index it under its origin, most recent last."""
        available = self._available.get(connection.origin)
        if available is None:
            available = self._available[connection.origin] = collections.OrderedDict()
        available[connection] = None

    def _drop(self, connection: AsyncConnectionInterface) -> None:
        self._load.pop(connection, None)
        self._idle.pop(connection, None)
        available = self._available.get(connection.origin)
        if available is not None:
            available.pop(connection, None)
            if not available:
                del self._available[connection.origin]

    def __repr__(self) -> str:
        active = sum(1 for count in self._load.values() if count)
        return (
            f"<{type(self).__name__} [connections: {len(self._load)}, active: {active}, "
            f"idle: {len(self._idle)}, waiting: {len(self._waiters)}]>"
        )


async def _close_all(connections: list[AsyncConnectionInterface]) -> None:
    """Close every one, even when closing one raises: in a cancelled trio scope every
    await raises again, and a connection left unclosed would leak its socket."""
    error: BaseException | None = None
    for connection in connections:
        try:
            await connection.aclose()
        except BaseException as exc:  # noqa: PERF203, BLE001 - raised once the rest are closed
            error = error or exc
    if error is not None:
        raise error


class AsyncPoolResponseStream:
    """A streaming body that gives its connection back to the pool when it ends or is
    closed; if dropped unclosed, its finaliser queues it for the pool to close."""

    __slots__ = ("_connection", "_pool", "_stream")

    def __init__(
        self, stream: typing.Any, pool: AsyncConnectionPool, connection: AsyncConnectionInterface
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._connection: AsyncConnectionInterface | None = connection

    def __call__(self) -> AsyncPoolResponseStream:
        return self

    def __aiter__(self) -> AsyncPoolResponseStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._stream.__anext__()
        except BaseException:
            await self.aclose()
            raise
        return chunk

    async def aclose(self) -> None:
        connection = self._connection
        if connection is not None:
            self._connection = None
            try:
                await self._stream.aclose()
            finally:
                await self._pool._release(connection)

    def __del__(self) -> None:
        connection = self._connection
        if connection is not None:
            self._connection = None
            self._pool._orphans.append((connection, self._stream))
