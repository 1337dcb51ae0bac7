"""Benchmark adapter for urllib3 2.x (peer; sync only).  One PoolManager(maxsize=pool
size) per scenario, used the documented way (request() with full URLs); downloads
stream with preload_content=False.  retries=False: no per-request Retry bookkeeping,
like the other clients here (ours and encode's httpcore default to no retries).
TLS: a new PoolManager with a fresh SSLContext per request."""

from __future__ import annotations

import ssl

import _common
import urllib3


class Sync:
    def __init__(self, connections: int) -> None:
        self.http = urllib3.PoolManager(maxsize=connections, retries=False)

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.request("GET", url)
        return r.status, len(r.data)

    def download(self, url: str) -> tuple[int, int]:
        n = 0
        r = self.http.request("GET", url, preload_content=False)
        for chunk in r.stream(65536):
            n += len(chunk)
        r.release_conn()
        return r.status, n

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = self.http.request("POST", url, body=body)
        return r.status, len(r.data)

    def close(self) -> None:
        self.http.clear()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        ctx = ssl.create_default_context(cafile=ca)
        http = urllib3.PoolManager(ssl_context=ctx, maxsize=1, retries=False)
        try:
            r = http.request("GET", url)
            return r.status, len(r.data)
        finally:
            http.clear()


if __name__ == "__main__":
    _common.main(Sync, None)
