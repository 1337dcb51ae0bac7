"""An ASGI gateway that forwards every request to one upstream server through httpcore.

This is the "killer app" sketched in the original proposal: a reverse proxy written at
the raw ASGI level. Request bodies stream from the client to the upstream and response
bodies stream back, chunk by chunk, each side waiting for the other (back-pressure both
ways), so memory stays flat whatever the size; one shared ``httpcore.AsyncConnectionPool``
keeps upstream connections alive between requests.

Run it with::

    GATEWAY_UPSTREAM=http://127.0.0.1:8001 uvicorn examples.gateway:app

Configuration (constructor arguments, or these environment variables for ``app``):

========================== =========== ===============================================
GATEWAY_UPSTREAM           (required)  base URL: ``http://host:port`` or ``https://host/prefix``
GATEWAY_MAX_CONNECTIONS    256         upstream connections, every one of them kept alive
GATEWAY_KEEPALIVE_EXPIRY   5           seconds an idle upstream connection is kept
GATEWAY_CONNECT_TIMEOUT    5           seconds to connect to the upstream
GATEWAY_READ_TIMEOUT       30          seconds the upstream may stay silent
GATEWAY_WRITE_TIMEOUT      30          seconds the upstream may refuse to take data
GATEWAY_POOL_TIMEOUT       10          seconds to wait for a free upstream connection
GATEWAY_HTTP2              0           1: HTTP/2 to the upstream (ALPN, or prior knowledge on http://)
GATEWAY_PRESERVE_HOST      0           1: pass the client's Host on instead of the upstream's
GATEWAY_KEEP_HEAP          1           glibc: keep freed heap memory for the next body chunk
========================== =========== ===============================================

What it does to a request: the path (still percent-encoded) and query are appended to
the upstream URL; hop-by-hop headers are dropped both ways (the fixed list and those the
``Connection`` header names); the client's address is appended to ``X-Forwarded-For``
and ``X-Forwarded-Proto``/``X-Forwarded-Host`` are set. Errors: 502 when the upstream
fails before the response starts, 504 when it times out, 503 when no upstream connection
became free in time; once the response has started, a failure aborts it (the ASGI
server closes the connection) so the client never takes a truncated body for a whole
one. Idempotent requests are retried once by the pool when a kept-alive connection was
closed under them. The pool is created at lifespan startup and closed at shutdown (or
lazily, on the first request, under a server without lifespan events).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpcore

__all__ = ["DEFAULT_TIMEOUT", "HOP_BY_HOP", "ClientDisconnected", "GatewayServer", "app", "keep_freed_heap"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Headers that describe one connection, not the message: never forwarded either way.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade"}
)
# Request headers the gateway writes itself (the client's copies are not to be trusted).
SET_BY_GATEWAY = HOP_BY_HOP | {b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
# The ASGI server serving the gateway writes its own; forwarding the upstream's would
# send two of each (nginx hides the same two by default).
SERVER_OWNED = HOP_BY_HOP | {b"date", b"server"}
# 204 and 304 have no body; a Content-Length on them (allowed on a 304) would make the
# ASGI server wait for body bytes that never come.
BODYLESS = {204: SERVER_OWNED | {b"content-length"}, 304: SERVER_OWNED | {b"content-length"}}
DEFAULT_TIMEOUT = httpcore.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
END = {"type": "http.response.body", "body": b"", "more_body": False}
SMALL_BODY = 64 * 1024  # a response body this small is read whole, then sent in one message

logger = logging.getLogger(__name__)


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


class GatewayServer:
    """An ASGI application forwarding every HTTP request to ``upstream``.

    ``upstream`` is a base URL (``http://host:port`` or ``https://host/prefix``); the
    request's path and query are appended to it.
    """

    watch_delay = 0.25
    """Seconds an exchange runs before the gateway listens for the client leaving
    (listening costs a task, a tenth of a 1 MiB response's CPU; most exchanges end sooner).
    A client gone mid-upload is seen at once: the upload is reading from it."""

    def __init__(
        self,
        upstream: str,
        *,
        timeout: httpcore.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = 256,
        keepalive_expiry: float = 5.0,
        http2: bool = False,
        preserve_host: bool = False,
    ) -> None:
        url = httpcore.URL(upstream)
        if url.scheme not in (b"http", b"https") or b"?" in url.target:
            raise ValueError(
                f"The upstream must be an http:// or https:// URL without a query, not {upstream!r}"
            )
        self.upstream = url
        self.timeout = timeout
        # A gateway reuses every connection it opens: keep-alive for all of them.
        self.limits = httpcore.Limits(max_connections, max_connections, keepalive_expiry)
        self.http2 = http2
        self.preserve_host = preserve_host
        self._prefix = url.target.rstrip(b"/")
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._late = LateWatches(self.watch_delay)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> GatewayServer:
        """A gateway configured by the ``GATEWAY_*`` variables (see the module's docstring)."""

        def number(name: str, default: float) -> float:
            return float(environ.get(name) or default)

        timeout = httpcore.Timeout(
            connect=number("GATEWAY_CONNECT_TIMEOUT", 5),
            read=number("GATEWAY_READ_TIMEOUT", 30),
            write=number("GATEWAY_WRITE_TIMEOUT", 30),
            pool=number("GATEWAY_POOL_TIMEOUT", 10),
        )
        return cls(
            environ.get("GATEWAY_UPSTREAM", "http://127.0.0.1:8001"),
            timeout=timeout,
            max_connections=int(number("GATEWAY_MAX_CONNECTIONS", 256)),
            keepalive_expiry=number("GATEWAY_KEEPALIVE_EXPIRY", 5),
            http2=flag(environ, "GATEWAY_HTTP2"),
            preserve_host=flag(environ, "GATEWAY_PRESERVE_HOST"),
        )

    @property
    def pool(self) -> httpcore.AsyncConnectionPool:
        """The shared pool, created on first use."""
        if self._pool is None:
            # HTTP/2 to an http:// upstream can only be spoken with prior knowledge.
            http1 = not (self.http2 and self.upstream.scheme == b"http")
            self._pool = httpcore.AsyncConnectionPool(
                timeout=self.timeout, limits=self.limits, http1=http1, http2=self.http2
            )
        return self._pool

    async def aclose(self) -> None:
        """Close the pool and its connections; a later request would open a new one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.forward(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool  # noqa: B018 - created now, in the server's event loop
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def upstream_url(self, scope: Scope) -> httpcore.URL:
        """The upstream URL for this request: the base URL plus the path as received
        (still percent-encoded) and the query string."""
        target = self._prefix + (scope.get("raw_path") or quote(scope["path"]).encode("ascii"))
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        up = self.upstream
        return url_for(up.scheme, up.host, up.port, target)

    def upstream_headers(self, scope: Scope) -> Headers:
        """The request headers to forward: hop-by-hop ones dropped, the client's address
        appended to X-Forwarded-For, X-Forwarded-Proto and -Host set. Host is the
        upstream's (httpcore writes it from the URL) unless ``preserve_host``."""
        headers, dropped = without(scope["headers"], SET_BY_GATEWAY)
        host = dropped.get(b"host", b"")
        forwarded_for = dropped.get(b"x-forwarded-for", b"")
        client = scope.get("client")
        if client and client[0]:
            forwarded_for += (b", " if forwarded_for else b"") + client[0].encode("ascii")
        if forwarded_for:
            headers.append((b"x-forwarded-for", forwarded_for))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("ascii")))
        if host:
            headers.append((b"x-forwarded-host", host))
            if self.preserve_host:
                headers.insert(0, (b"host", host))
        return headers

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One exchange: the request upstream, the response back. A client that leaves
        while the upstream thinks or streams is noticed by a ``ClientWatch``, which
        cancels the exchange (and so closes its upstream connection)."""
        message = await receive()
        if message["type"] != "http.request":
            return  # gone before the request was read: nobody is left to answer
        watch = ClientWatch(receive, self._late)
        body: bytes | AsyncIterator[bytes] = message.get("body", b"")
        if message.get("more_body", False):
            body = self.stream_body(receive, message.get("body", b""), watch)
        else:
            watch.later()
        try:
            await self.exchange(scope, body, send, watch)
        except ClientDisconnected:
            pass  # mid-upload: the pool closed the half-sent request's connection
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            watch.uncancel()  # the watch cancelled us: the client has left
        finally:
            watch.stop()

    async def exchange(
        self, scope: Scope, body: bytes | AsyncIterator[bytes], send: Send, watch: ClientWatch
    ) -> None:
        """Send the request upstream and stream the response back to the client."""
        url = self.upstream_url(scope)
        try:
            response = await self.pool.request(
                scope["method"], url, headers=self.upstream_headers(scope), body=body, stream=True
            )
            status = response.status_code
            headers, small = response_head(status, tuple(response.headers))
            # A small body is read whole, then sent in one message (and needs no watch).
            small = small or scope["method"] == "HEAD"
            last = (
                {"type": "http.response.body", "body": await response.aread(), "more_body": False}
                if small
                else END
            )
        except httpcore.HTTPCoreError as exc:
            status = 502
            if isinstance(exc, httpcore.TimeoutException):
                status = 503 if isinstance(exc, httpcore.PoolTimeout) else 504
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning("%s %s -> %d, the upstream failed: %s", scope["method"], url, status, detail)
            await send_error(send, status, detail)
            return
        start = {"type": "http.response.start", "status": status, "headers": headers}
        if not small:
            try:
                await send(start)
                async for chunk in response.stream():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                await response.aclose()  # a no-op unless the transfer stopped early
        watch.stop()  # before the last message: after it, the server reports a disconnect
        if small:
            await send(start)
        await send(last)

    async def stream_body(self, receive: Receive, first: bytes, watch: ClientWatch) -> AsyncIterator[bytes]:
        """The request body, message by message; once it is read, the watch may listen."""
        yield first
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()  # aborts the upstream request and its connection
            yield message.get("body", b"")
            if not message.get("more_body", False):
                watch.later()
                return


class ClientWatch:
    """Listens on ASGI ``receive`` for ``http.disconnect`` once the request body has been
    read, and cancels the task forwarding the request when it comes. The listening task
    is started ``later``, or ``now``, so quick exchanges never pay for it."""

    __slots__ = ("_late", "_listener", "_receive", "_task", "gone", "loop")

    def __init__(self, receive: Receive, late: LateWatches) -> None:
        self._receive = receive
        self._late = late
        self.loop = asyncio.get_running_loop()
        self._task = asyncio.current_task(self.loop)
        self._listener: asyncio.Task[None] | None = None
        self.gone = False

    def later(self) -> None:
        """Listen if the exchange is still going on after the gateway's ``watch_delay``."""
        self._late.add(self)

    def now(self) -> None:
        if self._listener is None:
            self._late.discard(self)
            self._listener = self.loop.create_task(self._listen())

    def stop(self) -> None:
        self._late.discard(self)
        if self._listener is not None:
            self._listener.cancel()

    def uncancel(self) -> None:
        """Take back the cancellation this watch made (Python 3.11+ counts them)."""
        uncancel = getattr(self._task, "uncancel", None)
        if uncancel is not None:
            uncancel()

    async def _listen(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass  # body messages the upstream did not wait for
        self.gone = True
        if self._task is not None:
            self._task.cancel()


class LateWatches:
    """The watches to start ``delay`` seconds after they were asked for, unless stopped
    before: one loop timer serves them all, rather than a timer per request."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._due: dict[ClientWatch, float] = {}  # in the order they are due
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def add(self, watch: ClientWatch) -> None:
        loop = watch.loop
        if loop is not self._loop:  # first use, or a new event loop: start afresh
            self._loop, self._due, self._timer = loop, {}, None
        self._due[watch] = loop.time() + self.delay
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self._fire)

    def discard(self, watch: ClientWatch) -> None:
        self._due.pop(watch, None)

    def _fire(self) -> None:
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        due = self._due
        while due:
            watch, when = next(iter(due.items()))
            if when > now:
                self._timer = self._loop.call_at(when, self._fire)
                return
            watch.now()


async def send_error(send: Send, status: int, detail: str) -> None:
    """A short plain-text error response."""
    body = f"{HTTPStatus(status).phrase}: {detail}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@functools.lru_cache(maxsize=256)
def url_for(scheme: bytes, host: bytes, port: int | None, target: bytes) -> httpcore.URL:
    """The URL, built (and checked) once per target: clients ask for the same ones again."""
    return httpcore.URL(scheme=scheme, host=host, port=port, target=target)


@functools.lru_cache(maxsize=256)
def response_head(
    status: int, headers: tuple[tuple[bytes, bytes], ...]
) -> tuple[tuple[tuple[bytes, bytes], ...], bool]:
    """The upstream's response headers to pass on, and whether the body is small (none
    allowed, or a Content-Length of at most SMALL_BODY); worked out once per distinct
    head, as an upstream sends the same few again and again (a tuple: shared)."""
    kept = without(headers, BODYLESS.get(status, SERVER_OWNED))[0]
    small = status in BODYLESS
    for name, value in kept:
        if name == b"content-length":
            small = small or int(value) <= SMALL_BODY
    return tuple(kept), small


def flag(environ: Mapping[str, str], name: str, default: str = "0") -> bool:
    """An on/off environment variable."""
    return environ.get(name, default).strip().lower() not in ("", "0", "false", "no", "off")


def keep_freed_heap(mmap_threshold: int = 1 << 20, trim_threshold: int = 16 << 20) -> bool:
    """Tune glibc's allocator for a process that moves large bodies; whether it applied.

    Every body chunk is a new bytes object of up to 256 KiB. By default glibc gives the
    free top of its heap back to the kernel once it passes 128 KiB (and serves some such
    blocks by mmap), so with a few bodies in flight nearly every chunk lands on fresh
    pages: page faults on every chunk, about a third of the gateway's CPU on 1 MiB
    bodies. Blocks below ``mmap_threshold`` come from the heap, and up to
    ``trim_threshold`` of free heap is kept for the next chunk. Peak memory is unchanged.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(mallopt(m_trim_threshold, trim_threshold))


def without(
    headers: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes]
) -> tuple[Headers, dict[bytes, bytes]]:
    """The headers, names lower-cased, minus those named in ``drop`` and those the
    Connection header names; and the dropped ones by name (repeated values joined)."""
    kept: Headers = []
    dropped: dict[bytes, bytes] = {}
    for name, value in headers:
        name = name.lower()
        if name not in drop:
            kept.append((name, value))
        elif name in dropped:
            dropped[name] += b", " + value
        else:
            dropped[name] = value
    connection = dropped.get(b"connection")
    if connection:
        named = {token.strip() for token in connection.lower().split(b",")}
        kept = [(name, value) for name, value in kept if name not in named]
    return kept, dropped


if flag(os.environ, "GATEWAY_KEEP_HEAP", "1"):
    keep_freed_heap()
app = GatewayServer.from_environ()
