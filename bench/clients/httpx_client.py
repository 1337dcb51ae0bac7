"""Benchmark adapter for httpx 0.28 (peer; bench/.venv-peers).  Default settings
except the pool limits; the TLS scenario passes a fresh SSLContext as `verify=`.
Named httpx_client.py so it does not shadow the httpx package on sys.path."""

from __future__ import annotations

import ssl

import _common
import httpx


def _limits(n: int) -> httpx.Limits:
    return httpx.Limits(max_connections=n, max_keepalive_connections=n)


class Sync:
    def __init__(self, connections: int) -> None:
        self.http = httpx.Client(limits=_limits(connections))

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.get(url)
        return r.status_code, len(r.content)

    def download(self, url: str) -> tuple[int, int]:
        n = 0
        with self.http.stream("GET", url) as r:
            for chunk in r.iter_raw():
                n += len(chunk)
            return r.status_code, n

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = self.http.post(url, content=body)
        return r.status_code, len(r.content)

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        with httpx.Client(verify=ctx, limits=_limits(1)) as http:
            r = http.get(url)
            return r.status_code, len(r.content)


class Async:
    def __init__(self, connections: int) -> None:
        self.connections = connections

    async def start(self) -> None:
        self.http = httpx.AsyncClient(limits=_limits(self.connections))

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.get(url)
        return r.status_code, len(r.content)

    async def download(self, url: str) -> tuple[int, int]:
        n = 0
        async with self.http.stream("GET", url) as r:
            async for chunk in r.aiter_raw():
                n += len(chunk)
            return r.status_code, n

    async def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = await self.http.post(url, content=body)
        return r.status_code, len(r.content)

    async def close(self) -> None:
        await self.http.aclose()

    @staticmethod
    async def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        async with httpx.AsyncClient(verify=ctx, limits=_limits(1)) as http:
            r = await http.get(url)
            return r.status_code, len(r.content)


class H2:
    """HTTP/2 over TLS (`http2=True`, needs the h2 package: the httpx[http2] extra)."""

    def __init__(self, connections: int, ca: str) -> None:
        self.connections = connections
        self.ca = ca

    async def start(self) -> None:
        ctx = ssl.create_default_context(cafile=self.ca)
        self.http = httpx.AsyncClient(http2=True, verify=ctx, limits=_limits(self.connections))

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.get(url)
        return r.status_code, len(r.content)

    async def version(self, url: str) -> str:
        r = await self.http.get(url)
        return r.http_version

    async def close(self) -> None:
        await self.http.aclose()


if __name__ == "__main__":
    _common.main(Sync, Async, H2)
