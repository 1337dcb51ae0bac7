"""Benchmark adapter for requests on our HTTPCoreAdapter (runs with ours; sync only).
The same Session set-up as requests_client.py, so the two differ only in the transport
adapter; plus HTTP/2 from threads sharing the session (HTTPCoreAdapter(http2=True))."""

from __future__ import annotations

import _common
import requests

from httpcore.contrib.requests import HTTPCoreAdapter


class Sync:
    def __init__(self, connections: int) -> None:
        self.http = requests.Session()
        adapter = HTTPCoreAdapter(pool_connections=1, pool_maxsize=connections)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.get(url)
        return r.status_code, len(r.content)

    def download(self, url: str) -> tuple[int, int]:
        n = 0
        with self.http.get(url, stream=True) as r:
            for chunk in r.iter_content(65536):
                n += len(chunk)
            return r.status_code, n

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        r = self.http.post(url, data=body)
        return r.status_code, len(r.content)

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        with requests.Session() as http:
            adapter = HTTPCoreAdapter()
            http.mount("http://", adapter)
            http.mount("https://", adapter)
            r = http.get(url, verify=ca)
            return r.status_code, len(r.content)


class H2Sync:
    """HTTP/2 over TLS: threads share the session, so one connection carries them all."""

    def __init__(self, connections: int, ca: str) -> None:
        self.ca = ca
        self.http = requests.Session()
        self.http.mount("https://", HTTPCoreAdapter(pool_maxsize=connections, http2=True))

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.get(url, verify=self.ca)
        return r.status_code, len(r.content)

    def version(self, url: str) -> str:
        r = self.http.get(url, verify=self.ca)
        return "HTTP/2" if r.raw.version == 20 else str(r.raw.version)

    def close(self) -> None:
        self.http.close()


if __name__ == "__main__":
    _common.main(Sync, None, None, H2Sync)
