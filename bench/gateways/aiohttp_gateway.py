"""The peer of examples/gateway.py for the gateway benchmark: the same ASGI gateway on aiohttp.

It does the same work per request as ours: forward the method, raw path, query, the
headers minus hop-by-hop ones (and those the Connection header names), with
X-Forwarded-For/-Proto/-Host, and the body (one message as bytes, more as a stream);
stream the response back without Date/Server (the ASGI server writes its own) and
without a Content-Length on 204/304. One shared ``aiohttp.ClientSession`` whose
connector keeps up to GATEWAY_MAX_CONNECTIONS connections alive (as ours does), no
cookie jar, no decompression, no timeout but the same read timeout as ours.

    GATEWAY_UPSTREAM=http://127.0.0.1:8001 uvicorn --app-dir bench/gateways aiohttp_gateway:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import yarl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
SET_BY_GATEWAY = HOP_BY_HOP | {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
SERVER_OWNED = HOP_BY_HOP | {"date", "server"}
BODYLESS = {204: SERVER_OWNED | {"content-length"}, 304: SERVER_OWNED | {"content-length"}}


def without(headers: list[tuple[str, str]], drop: frozenset[str]) -> list[tuple[str, str]]:
    for name, value in headers:
        if name == "connection":
            drop = drop.union(token.strip() for token in value.lower().split(","))
    return [(name, value) for name, value in headers if name not in drop]


class AiohttpGateway:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.max_connections = int(os.environ.get("GATEWAY_MAX_CONNECTIONS", "256"))
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=5.0),
                        cookie_jar=aiohttp.DummyCookieJar(),
                        auto_decompress=False,
                        timeout=aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=30.0),
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.session is not None:
                        await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        assert self.session is not None, "run with lifespan events"
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        url = yarl.URL(self.upstream + target, encoded=True)
        raw = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        headers = without(raw, SET_BY_GATEWAY)
        host = forwarded_for = ""
        for name, value in raw:
            if name == "host":
                host = value
            elif name == "x-forwarded-for":
                forwarded_for += (", " if forwarded_for else "") + value
        client = scope.get("client")
        if client and client[0]:
            forwarded_for += (", " if forwarded_for else "") + client[0]
        headers.append(("x-forwarded-for", forwarded_for))
        headers.append(("x-forwarded-proto", scope.get("scheme", "http")))
        if host:
            headers.append(("x-forwarded-host", host))

        message = await receive()
        if message["type"] != "http.request":
            return
        body: bytes | AsyncIterator[bytes] = message.get("body", b"")
        if message.get("more_body", False):
            body = self.stream_body(receive, message.get("body", b""))
        try:
            response = await self.session.request(
                scope["method"], url, headers=headers, data=body or None, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = 504 if isinstance(exc, TimeoutError) else 502
            text = f"upstream failed: {exc!r}\n".encode()
            length = str(len(text)).encode()
            await send(
                {"type": "http.response.start", "status": status, "headers": [(b"content-length", length)]}
            )
            await send({"type": "http.response.body", "body": text})
            return
        try:
            drop = BODYLESS.get(response.status, SERVER_OWNED)
            out = [(k.lower(), v) for k, v in response.raw_headers]
            out_headers = [(k, v) for k, v in out if k.decode("latin-1") not in drop]
            names = {k for k, _ in out}
            if b"connection" in names:
                dropped = {
                    t.strip() for v in response.headers.getall("connection") for t in v.lower().split(",")
                }
                out_headers = [(k, v) for k, v in out_headers if k.decode("latin-1") not in dropped]
            await send({"type": "http.response.start", "status": response.status, "headers": out_headers})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            response.release()

    async def stream_body(self, receive: Receive, first: bytes) -> AsyncIterator[bytes]:
        yield first
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("the client went away")
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


app = AiohttpGateway(os.environ.get("GATEWAY_UPSTREAM", "http://127.0.0.1:8001"))
