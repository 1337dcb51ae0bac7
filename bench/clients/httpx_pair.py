"""Benchmark adapter for httpx 0.28 and httpx2 clients, on our core or on their own.

Which client and which core come from the environment (bench/httpx_pairs.py sets them):
  BENCH_HTTPX=httpx   BENCH_CORE=ours     httpx.Client/AsyncClient, this repo as its httpcore
  BENCH_HTTPX=httpx   BENCH_CORE=native   the same on encode's httpcore 1.0.9 (bench/.venv-httpx)
  BENCH_HTTPX=httpx2  BENCH_CORE=ours     httpx2 clients with httpcore.contrib.httpx transports
  BENCH_HTTPX=httpx2  BENCH_CORE=native   httpx2 clients on their default transport (httpcore2)
Each run checks, before timing, that its requests go through the core it names: a run
that silently measured the other core would make the ratios meaningless.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import _common

LIBRARY = os.environ.get("BENCH_HTTPX", "httpx")
CORE = os.environ.get("BENCH_CORE", "ours")
lib: Any = importlib.import_module(LIBRARY)


def _check_core(transport: Any) -> None:
    pool = transport._pool
    if CORE == "ours":
        import httpcore

        root = Path(os.environ.get("BENCH_OURS_ROOT", "/nonexistent")).resolve()
        if not Path(httpcore.__file__).resolve().is_relative_to(root):
            raise ImportError(f"httpcore from {httpcore.__file__}, not from {root}")
    if LIBRARY == "httpx2" and CORE == "ours":
        return  # our transport makes its pool on the first request; checked in _check_pool
    expected = {"httpx": "httpcore", "httpx2": "httpcore2"}[LIBRARY]
    if type(pool).__module__.partition(".")[0] != expected:
        raise RuntimeError(f"{LIBRARY} sends through {type(pool).__module__}, not {expected}")
    if LIBRARY == "httpx" and CORE == "native":
        import httpcore

        if httpcore.__version__ != "1.0.9":
            raise ImportError(f"httpcore {httpcore.__version__}, not encode's 1.0.9")


def _check_pool(transport: Any) -> None:
    """After the warm-up request: our transport's pool is ours (httpx2 on our core)."""
    if LIBRARY == "httpx2" and CORE == "ours":
        module = type(transport._pool).__module__
        if not module.startswith("httpcore._"):
            raise RuntimeError(f"httpx2 sends through {module}, not our pool")


def _transport(sync: bool, connections: int) -> Any:
    limits = lib.Limits(max_connections=connections, max_keepalive_connections=connections)
    if LIBRARY == "httpx2" and CORE == "ours":
        from httpcore.contrib.httpx import AsyncHTTPTransport, HTTPTransport

        return HTTPTransport(limits=limits) if sync else AsyncHTTPTransport(limits=limits)
    return lib.HTTPTransport(limits=limits) if sync else lib.AsyncHTTPTransport(limits=limits)


class Sync:
    def __init__(self, connections: int) -> None:
        self.transport = _transport(True, connections)
        _check_core(self.transport)
        self.http = lib.Client(transport=self.transport)
        self.checked = False

    def get(self, url: str) -> tuple[int, int]:
        r = self.http.get(url)
        if not self.checked:
            _check_pool(self.transport)
            self.checked = True
        return r.status_code, len(r.content)

    def close(self) -> None:
        self.http.close()


class Async:
    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.checked = False

    async def start(self) -> None:
        self.transport = _transport(False, self.connections)
        _check_core(self.transport)
        self.http = lib.AsyncClient(transport=self.transport)

    async def get(self, url: str) -> tuple[int, int]:
        r = await self.http.get(url)
        if not self.checked:
            _check_pool(self.transport)
            self.checked = True
        return r.status_code, len(r.content)

    async def close(self) -> None:
        await self.http.aclose()


if __name__ == "__main__":
    _common.main(Sync, Async)
