"""A tiny framework-free ASGI application used as the "well-behaved" peer.

Theory of operation: ``app`` is a plain ASGI 3 callable.  For ``http`` scopes
it dispatches on the path to one small coroutine per endpoint; every endpoint
builds its response with ``_start``/``_body`` helpers so that HEAD requests and
body-less statuses (1xx, 204, 304) never carry a body, whatever the server.
``lifespan`` scopes are acknowledged (hypercorn always sends them; uvicorn is
run with ``lifespan="off"``); other scope types are ignored.

Nothing is ever buffered in full unless an endpoint's contract says so:
``/upload`` hashes the body message by message and ``/stream`` / ``/fixed``
generate the deterministic ``pattern`` chunk by chunk, so the app can be used
for multi-megabyte transfers.

The same app serves HTTP/1.1 (uvicorn, hypercorn) and HTTP/2 (hypercorn).  On
HTTP/2 header names are lower-cased and connection-specific headers dropped,
because h2 refuses to send them.

Endpoints (query parameters are optional unless noted):

* ``GET /`` -> ``Hello, world!`` as text/plain
* ``/echo_body`` -> the request body, verbatim
* ``/echo_headers`` -> JSON ``{"method", "http_version", "headers", "path",
  "query_string", "scheme"}``; headers are ``[[name, value], ...]``
  latin-1 decoded exactly as the server handed them to ASGI
* ``/upload`` -> JSON ``{"length", "sha256", "chunks"}``; ``chunks`` counts
  every ``http.request`` message received (an empty body is one message)
* ``/stream?size=N&chunk=M`` -> N pattern bytes in M-byte messages, no
  content-length (chunked on HTTP/1.1); defaults size=1024, chunk=65536
* ``/fixed?size=N&chunk=M`` -> the same, with content-length
* ``/slow_headers?delay=S`` -> sleeps S seconds (default 1), then ``slow``
* ``/slow_body?delay=S`` -> ``start`` at once, sleeps S (default 1), ``end``
* ``/status/{code}`` -> that status, body ``status`` unless body-less
* ``/close`` -> ``closing`` with ``connection: close``
* ``/headers_out?Name=value&...`` -> each pair echoed as a response header,
  in order, duplicates kept, name case as given
* anything else -> 404 ``not found``
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "app", "pattern"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_PERIOD = 251
_BASE = bytes(range(_PERIOD))
_DEFAULT_CHUNK = 65536
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"}


def pattern(n: int, offset: int = 0) -> bytes:
    """Return ``n`` bytes of the stream ``bytes(i % 251 for i in count())``,
    starting at position ``offset``.  ``pattern(a) + pattern(b, a) ==
    pattern(a + b)``, so a body can be verified chunk by chunk."""
    if n <= 0:
        return b""
    start = offset % _PERIOD
    rotated = _BASE[start:] + _BASE[:start]
    return (rotated * (n // _PERIOD + 1))[:n]


class _Exchange:
    """One HTTP request/response: knows whether a body may be sent."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.method: str = scope["method"]
        self.http2: bool = str(scope.get("http_version", "")).startswith("2")
        self.query: list[tuple[str, str]] = parse_qsl(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        self.bodyless = self.method == "HEAD"
        self.disconnected = False

    def param(self, name: str, default: float) -> float:
        for key, value in self.query:
            if key == name:
                return float(value)
        return default

    async def start(self, status: int, headers: Headers | None = None) -> None:
        headers = list(headers or [])
        if self.http2:
            headers = [(k.lower(), v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        if status < 200 or status in (204, 304):
            self.bodyless = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = False) -> None:
        if self.bodyless:
            data = b""
            if more:
                return
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(self, status: int, body: bytes, headers: Headers | None = None) -> None:
        headers = list(headers or [])
        headers.append((b"content-length", str(len(body)).encode()))
        await self.start(status, headers)
        await self.body(body)

    async def json(self, obj: object) -> None:
        await self.respond(200, json.dumps(obj).encode(), [(b"content-type", b"application/json")])

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """Async-iterate over the request body, one item per ASGI message."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


async def _root(ex: _Exchange) -> None:
    await ex.respond(200, b"Hello, world!", [(b"content-type", b"text/plain")])


async def _echo_body(ex: _Exchange) -> None:
    body = b"".join([chunk async for chunk in ex.body_chunks()])
    if not ex.disconnected:
        await ex.respond(200, body, [(b"content-type", b"application/octet-stream")])


async def _echo_headers(ex: _Exchange) -> None:
    scope = ex.scope
    await ex.json(
        {
            "method": ex.method,
            "http_version": scope.get("http_version"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "path": scope.get("path"),
            "query_string": scope.get("query_string", b"").decode("latin-1"),
            "scheme": scope.get("scheme"),
        }
    )


async def _upload(ex: _Exchange) -> None:
    digest = hashlib.sha256()
    length = chunks = 0
    async for chunk in ex.body_chunks():
        digest.update(chunk)
        length += len(chunk)
        chunks += 1
    if not ex.disconnected:
        await ex.json({"length": length, "sha256": digest.hexdigest(), "chunks": chunks})


async def _pattern_body(ex: _Exchange, *, fixed: bool) -> None:
    size = int(ex.param("size", 1024))
    chunk = max(1, int(ex.param("chunk", _DEFAULT_CHUNK)))
    headers: Headers = [(b"content-type", b"application/octet-stream")]
    if fixed:
        headers.append((b"content-length", str(size).encode()))
    await ex.start(200, headers)
    for offset in range(0, size, chunk):
        await ex.body(pattern(min(chunk, size - offset), offset), more=True)
    await ex.body(b"")


async def _slow_headers(ex: _Exchange) -> None:
    await asyncio.sleep(ex.param("delay", 1.0))
    await ex.respond(200, b"slow")


async def _slow_body(ex: _Exchange) -> None:
    await ex.start(200, [(b"content-type", b"text/plain")])
    await ex.body(b"start", more=True)
    await asyncio.sleep(ex.param("delay", 1.0))
    await ex.body(b"end")


async def _status(ex: _Exchange, code: str) -> None:
    if not code.isdigit() or not 200 <= int(code) <= 599:
        await ex.respond(400, b"bad status")
        return
    status = int(code)
    if status in (204, 304):
        await ex.start(status)
        await ex.body(b"")
    else:
        await ex.respond(status, b"status")


async def _close(ex: _Exchange) -> None:
    await ex.respond(200, b"closing", [(b"connection", b"close")])


async def _headers_out(ex: _Exchange) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in ex.query]
    await ex.respond(200, b"ok", headers)


_ROUTES: dict[str, Callable[[_Exchange], Awaitable[None]]] = {
    "/": _root,
    "/echo_body": _echo_body,
    "/echo_headers": _echo_headers,
    "/upload": _upload,
    "/stream": lambda ex: _pattern_body(ex, fixed=False),
    "/fixed": lambda ex: _pattern_body(ex, fixed=True),
    "/slow_headers": _slow_headers,
    "/slow_body": _slow_body,
    "/close": _close,
    "/headers_out": _headers_out,
}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    ex = _Exchange(scope, receive, send)
    path: str = scope["path"]
    route = _ROUTES.get(path)
    if route is not None:
        await route(ex)
    elif path.startswith("/status/"):
        await _status(ex, path[len("/status/") :])
    else:
        await ex.respond(404, b"not found", [(b"content-type", b"text/plain")])
