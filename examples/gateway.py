"""An ASGI gateway that forwards every request to one upstream server through httpcore.

This is the "killer app" sketched in the original proposal: a reverse proxy written at
the raw ASGI level. Request bodies stream from the client to the upstream and response
bodies stream back, chunk by chunk, so memory stays flat whatever the size; one shared
``httpcore.AsyncConnectionPool`` keeps upstream connections alive between requests.

Run it with::

    GATEWAY_UPSTREAM=http://127.0.0.1:8001 uvicorn examples.gateway:app

The pool is created at ASGI lifespan startup and closed at shutdown; a server running
without lifespan events gets one lazily, on the first request. An upstream that cannot
be reached or breaks the protocol gets the client a 502 (a 504 on a timeout) if the
response has not started yet; once it has, the response is aborted. When the client
goes away, the upstream request or response is closed at once, freeing its connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpcore

__all__ = ["DEFAULT_TIMEOUT", "HOP_BY_HOP", "ClientDisconnected", "ClientRequest", "GatewayServer", "app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Headers that describe one connection, not the message: never forwarded either way.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade"}
)
# The ASGI server serving the gateway writes its own; forwarding the upstream's would
# send two of each (nginx hides the same two by default).
SERVER_OWNED = frozenset({b"date", b"server"})
DEFAULT_TIMEOUT = httpcore.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)

logger = logging.getLogger(__name__)


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


class GatewayServer:
    """An ASGI application forwarding every HTTP request to ``upstream``.

    ``upstream`` is a base URL (``http://host:port`` or ``https://host/prefix``); the
    request's path and query are appended to it.
    """

    def __init__(
        self,
        upstream: str,
        *,
        timeout: httpcore.Timeout = DEFAULT_TIMEOUT,
        limits: httpcore.Limits | None = None,
    ) -> None:
        url = httpcore.URL(upstream)
        if url.scheme not in (b"http", b"https") or b"?" in url.target:
            raise ValueError(
                f"The upstream must be an http:// or https:// URL without a query, not {upstream!r}"
            )
        self.upstream = url
        self.timeout = timeout
        self.limits = limits
        self._prefix = url.target.rstrip(b"/")
        self._pool: httpcore.AsyncConnectionPool | None = None

    @property
    def pool(self) -> httpcore.AsyncConnectionPool:
        """The shared pool, created on first use."""
        if self._pool is None:
            self._pool = httpcore.AsyncConnectionPool(timeout=self.timeout, limits=self.limits)
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
        return httpcore.URL(scheme=up.scheme, host=up.host, port=up.port, target=target)

    def upstream_headers(self, scope: Scope) -> Headers:
        """The request headers to forward. Host is dropped: httpcore writes the
        upstream's own from the URL. The client's address is added to X-Forwarded-For."""
        headers = without_hop_by_hop(scope["headers"], also=frozenset({b"host"}))
        client = scope.get("client")
        if client and client[0]:
            headers.append((b"x-forwarded-for", client[0].encode("ascii")))
        return headers

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the exchange with the upstream until it ends or the client goes away
        (ASGI servers may drop without a word what is sent after that), whichever is
        first. A failure after the response started is raised: that is how an ASGI
        application tells the server to abort the response."""
        client = ClientRequest(receive)
        exchange = asyncio.ensure_future(self.exchange(scope, client, send))
        watch = asyncio.ensure_future(client.disconnected())
        try:
            await asyncio.wait((exchange, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            exchange.cancel()  # a no-op when it has finished; otherwise the client is gone
            watch.cancel()
            await asyncio.gather(exchange, watch, return_exceptions=True)
        if not exchange.cancelled():
            exchange.result()

    async def exchange(self, scope: Scope, client: ClientRequest, send: Send) -> None:
        """Send the request upstream and stream the response back to the client."""
        url = self.upstream_url(scope)
        try:
            body = await client.body()
            response = await self.pool.request(
                scope["method"], url, headers=self.upstream_headers(scope), body=body, stream=True
            )
        except ClientDisconnected:
            return  # nobody is left to answer
        except httpcore.HTTPCoreError as exc:
            status = 504 if isinstance(exc, httpcore.TimeoutException) else 502
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            logger.warning("%s %s -> %d, the upstream failed: %s", scope["method"], url, status, detail)
            await send_error(send, status, detail)
            return
        try:
            await _send_response(response, send)
        finally:
            await response.aclose()  # a no-op unless the transfer stopped early


class ClientRequest:
    """The client's side of one exchange, read from ASGI ``receive``: first the
    request body, then, once that has been read, the disconnect."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body_read = asyncio.Event()

    async def body(self) -> bytes | AsyncIterator[bytes]:
        """Bytes when the body came in one message (so httpcore can send it with a
        Content-Length), otherwise a stream of its messages."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        first: bytes = message.get("body", b"")
        if message.get("more_body", False):
            return self._stream(first)
        self._body_read.set()
        return first

    async def _stream(self, first: bytes) -> AsyncIterator[bytes]:
        try:
            yield first
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected()  # aborts the upstream request and its connection
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return
        finally:
            self._body_read.set()

    async def disconnected(self) -> None:
        """Return when the client has gone. It listens only after the body has been
        read: until then the body stream is the one calling ``receive``."""
        await self._body_read.wait()
        while (await self._receive())["type"] != "http.disconnect":
            pass


async def _send_response(response: httpcore.Response, send: Send) -> None:
    headers = without_hop_by_hop(response.headers, also=SERVER_OWNED)
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    async for chunk in response.stream():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_error(send: Send, status: int, detail: str) -> None:
    """A short plain-text error response."""
    body = f"{HTTPStatus(status).phrase}: {detail}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def without_hop_by_hop(
    headers: Iterable[tuple[bytes, bytes]], also: frozenset[bytes] = frozenset()
) -> Headers:
    """The headers with lower-cased names, minus the hop-by-hop ones (the fixed list,
    those the Connection header names, and ``also``)."""
    lowered = [(name.lower(), value) for name, value in headers]
    drop = HOP_BY_HOP | also
    for name, value in lowered:
        if name == b"connection":
            drop = drop.union(token.strip() for token in value.lower().split(b","))
    return [(name, value) for name, value in lowered if name not in drop]


app = GatewayServer(os.environ.get("GATEWAY_UPSTREAM", "http://127.0.0.1:8001"))
