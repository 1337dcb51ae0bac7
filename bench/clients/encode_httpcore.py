"""Benchmark adapter for encode's httpcore 1.0.9 (peer; lives in bench/.venv-peers).

Its API: ConnectionPool(max_connections=, max_keepalive_connections=, ssl_context=),
pool.request() -> Response(.status, .content), pool.stream() with iter_stream()/aiter_stream().
"""

from __future__ import annotations

import ssl

import _common

import httpcore

if "site-packages" not in (httpcore.__file__ or ""):
    raise ImportError(f"expected encode's httpcore from the peers venv, got {httpcore.__file__}")


class Sync:
    def __init__(self, connections: int) -> None:
        self.http = httpcore.ConnectionPool(
            max_connections=connections, max_keepalive_connections=connections
        )

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.request("GET", url)
        return r.status, len(r.content)

    def download(self, url: str) -> tuple[int, int]:
        n = 0
        with self.http.stream("GET", url) as r:
            for chunk in r.iter_stream():
                n += len(chunk)
            return r.status, n

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = self.http.request("POST", url, content=body)
        return r.status, len(r.content)

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        with httpcore.ConnectionPool(ssl_context=ctx, max_connections=1) as http:
            r = http.request("GET", url)
            return r.status, len(r.content)


class Async:
    def __init__(self, connections: int) -> None:
        self.connections = connections

    async def start(self) -> None:
        n = self.connections
        self.http = httpcore.AsyncConnectionPool(max_connections=n, max_keepalive_connections=n)

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.request("GET", url)
        return r.status, len(r.content)

    async def download(self, url: str) -> tuple[int, int]:
        n = 0
        async with self.http.stream("GET", url) as r:
            async for chunk in r.aiter_stream():
                n += len(chunk)
            return r.status, n

    async def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = await self.http.request("POST", url, content=body)
        return r.status, len(r.content)

    async def close(self) -> None:
        await self.http.aclose()

    @staticmethod
    async def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        async with httpcore.AsyncConnectionPool(ssl_context=ctx, max_connections=1) as http:
            r = await http.request("GET", url)
            return r.status, len(r.content)


class H2:
    """HTTP/2 over TLS (ALPN h2), max_connections=1 so the streams share one connection."""

    def __init__(self, connections: int, ca: str) -> None:
        self.connections = connections
        self.ca = ca

    async def start(self) -> None:
        n = self.connections
        ctx = ssl.create_default_context(cafile=self.ca)
        self.http = httpcore.AsyncConnectionPool(
            ssl_context=ctx, http2=True, max_connections=n, max_keepalive_connections=n
        )

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.request("GET", url)
        return r.status, len(r.content)

    async def version(self, url: str) -> str:
        r = await self.http.request("GET", url)
        return bytes(r.extensions.get("http_version", b"?")).decode()

    async def close(self) -> None:
        await self.http.aclose()


if __name__ == "__main__":
    _common.main(Sync, Async, H2)
