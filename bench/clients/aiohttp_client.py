"""Benchmark adapter for aiohttp 3.x (peer; async only).  bench/run.py runs it twice:
on the default asyncio loop and with `--loop uvloop`.  One ClientSession with a
TCPConnector(limit=pool size) per scenario; the TLS scenario makes a new session
(and connector) per request with a fresh SSLContext."""

from __future__ import annotations

import ssl

import _common
import aiohttp


class Async:
    def __init__(self, connections: int) -> None:
        self.connections = connections

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.connections))

    async def get(self, url: str) -> tuple[int, int]:
        async with self.http.get(url) as r:
            return r.status, len(await r.read())

    async def download(self, url: str) -> tuple[int, int]:
        n = 0
        async with self.http.get(url) as r:
            async for chunk in r.content.iter_any():
                n += len(chunk)
            return r.status, n

    async def upload(self, url: str, body: bytes) -> tuple[int, int]:
        async with self.http.post(url, data=body) as r:
            return r.status, len(await r.read())

    async def close(self) -> None:
        await self.http.close()

    @staticmethod
    async def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        connector = aiohttp.TCPConnector(ssl=ctx, limit=1)
        async with aiohttp.ClientSession(connector=connector) as http, http.get(url) as r:
            return r.status, len(await r.read())


if __name__ == "__main__":
    _common.main(None, Async)
