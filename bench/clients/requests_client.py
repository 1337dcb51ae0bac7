"""Benchmark adapter for requests (peer; sync only).  One Session with an HTTPAdapter
sized to the pool per scenario, default settings otherwise (so requests' own per-call
work, e.g. environment/proxy lookups, is part of what is measured).  TLS: a new
Session per request with verify=<CA file>, the idiomatic way."""

from __future__ import annotations

import _common
import requests
from requests.adapters import HTTPAdapter


class Sync:
    def __init__(self, connections: int) -> None:
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections)
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
            r = http.get(url, verify=ca)
            return r.status_code, len(r.content)


if __name__ == "__main__":
    _common.main(Sync, None)
