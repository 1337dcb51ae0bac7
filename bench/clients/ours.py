"""Benchmark adapter for OUR httpcore (the repo's package), per the project's API.md.

Runs under the project's interpreter with PYTHONPATH=<repo root> (bench/run.py sees
to that), so `import httpcore` is this repository's package, not encode's.
One pool per scenario, reused for every request; bodies fully read.  Only the API.md
surface is used (pools are opened/closed as context managers).
"""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path

import _common

import httpcore

_root = os.environ.get("BENCH_OURS_ROOT")  # set by bench/run.py
if _root and not Path(httpcore.__file__).resolve().is_relative_to(Path(_root).resolve()):
    raise ImportError(f"imported {httpcore.__file__}, not the repo's httpcore under {_root}")


def _limits(n: int) -> httpcore.Limits:
    return httpcore.Limits(max_connections=n, max_keepalive_connections=n)


class Sync:
    def __init__(self, connections: int) -> None:
        self.stack = contextlib.ExitStack()
        self.http = self.stack.enter_context(httpcore.ConnectionPool(limits=_limits(connections)))

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.request("GET", url)
        return r.status_code, len(r.body)

    def download(self, url: str) -> tuple[int, int]:
        n = 0
        with self.http.stream("GET", url) as r:
            for chunk in r.stream():
                n += len(chunk)
            return r.status_code, n

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = self.http.request("POST", url, body=body)
        return r.status_code, len(r.body)

    def close(self) -> None:
        self.stack.close()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        with httpcore.ConnectionPool(ssl_context=ctx, limits=_limits(1)) as http:
            r = http.request("GET", url)
            return r.status_code, len(r.body)


class Async:
    def __init__(self, connections: int) -> None:
        self.connections = connections

    async def start(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        pool = httpcore.AsyncConnectionPool(limits=_limits(self.connections))
        self.http = await self.stack.enter_async_context(pool)

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.request("GET", url)
        return r.status_code, len(r.body)

    async def download(self, url: str) -> tuple[int, int]:
        n = 0
        async with self.http.stream("GET", url) as r:
            async for chunk in r.stream():
                n += len(chunk)
            return r.status_code, n

    async def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = await self.http.request("POST", url, body=body)
        return r.status_code, len(r.body)

    async def close(self) -> None:
        await self.stack.aclose()

    @staticmethod
    async def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        async with httpcore.AsyncConnectionPool(ssl_context=ctx, limits=_limits(1)) as http:
            r = await http.request("GET", url)
            return r.status_code, len(r.body)


class H2:
    """HTTP/2 over TLS: ALPN offers h2 and http/1.1, nginx picks h2; one connection."""

    def __init__(self, connections: int, ca: str) -> None:
        self.connections = connections
        self.ca = ca

    async def start(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        ctx = ssl.create_default_context(cafile=self.ca)
        pool = httpcore.AsyncConnectionPool(ssl_context=ctx, http2=True, limits=_limits(self.connections))
        self.http = await self.stack.enter_async_context(pool)

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.request("GET", url)
        return r.status_code, len(r.body)

    async def version(self, url: str) -> str:
        r = await self.http.request("GET", url)
        return bytes(r.extensions.get("http_version", b"?")).decode()

    async def close(self) -> None:
        await self.stack.aclose()


class H2Sync:
    """HTTP/2 over TLS from threads sharing one sync pool: one connection, many streams."""

    def __init__(self, connections: int, ca: str) -> None:
        ctx = ssl.create_default_context(cafile=ca)
        self.http = httpcore.ConnectionPool(ssl_context=ctx, http2=True, limits=_limits(connections))

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.request("GET", url)
        return r.status_code, len(r.body)

    def version(self, url: str) -> str:
        r = self.http.request("GET", url)
        return bytes(r.extensions.get("http_version", b"?")).decode()

    def close(self) -> None:
        self.http.close()


if __name__ == "__main__":
    _common.main(Sync, Async, H2, H2Sync)
