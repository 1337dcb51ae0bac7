"""Run seeded fuzz cases through one shared pool, sync or async, and check everything.

Per case: the fuzz request may fail only with an ``HTTPCoreError`` and within
``CASE_BOUND``; then a good request to the same origin must get its own answer (a
poisoned pool or a crossed response shows at once), and the pool may hold no more
streams than its limit. After the run, every stream the backend opened is closed.

``python -m tests.fuzzing.run --seed N --cases N [--http2-cases N]`` runs a longer
fuzz (``make fuzz SEED=... CASES=...``); the tests run a bounded one in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import typing

import httpcore
from tests.fuzzing import h1, h2
from tests.fuzzing.memory import RESET, STALL, AsyncMemoryBackend, MemoryBackend, Peer
from tests.servers.raw import Handler, RawConnection

__all__ = ["Runner", "run_h1", "run_h1_async", "run_h2", "run_h2_async", "serve_peers"]

Runner = typing.Callable[[int, int], int]  # (seed, cases) -> connections opened

TIMEOUT = httpcore.Timeout(5.0)  # in memory, nothing ever waits for a deadline
CASE_BOUND = 1.0  # seconds one case may take: far more than any needs in memory
MAX_CONNECTIONS = 2
URL = "http://fuzz.test"


def _check(case: typing.Any, outcome: object, started: float) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < CASE_BOUND, f"took {elapsed:.2f}s: {case}"
    if isinstance(outcome, BaseException) and not isinstance(outcome, httpcore.HTTPCoreError):
        raise AssertionError(f"{outcome!r} escaped: {case}") from outcome


def _check_good(body: bytes, index: int, open_streams: int, case: typing.Any) -> None:
    assert body == b"good:%d" % index, f"the pool was poisoned by {case}: got {body!r}"
    assert open_streams <= MAX_CONNECTIONS, f"streams left open after {case}"


def _fuzz_request(pool: httpcore.ConnectionPool, case: typing.Any, base: str) -> object:
    url = f"{base}/fuzz/{case.index}"
    body = b"body" if case.method == "POST" else None
    try:
        if case.read_limit is None:
            return pool.request(case.method, url, body=body)
        with pool.stream(case.method, url, body=body) as r:
            received = 0
            for chunk in r.stream():
                received += len(chunk)
                if received >= case.read_limit:
                    break
        return r
    except Exception as exc:  # noqa: BLE001 - _check tells which are fine
        return exc


async def _fuzz_request_async(pool: httpcore.AsyncConnectionPool, case: typing.Any, base: str) -> object:
    url = f"{base}/fuzz/{case.index}"
    body = b"body" if case.method == "POST" else None
    try:
        if case.read_limit is None:
            return await pool.request(case.method, url, body=body)
        async with pool.stream(case.method, url, body=body) as r:
            received = 0
            async for chunk in r.stream():
                received += len(chunk)
                if received >= case.read_limit:
                    break
        return r
    except Exception as exc:  # noqa: BLE001 - _check tells which are fine
        return exc


def _run(
    cases: list[typing.Any], peer: typing.Callable[[], Peer], url: str | None = None, **options: typing.Any
) -> int:
    """Through the in-memory network, or (``url``) the real one to a server of peers."""
    backend = MemoryBackend(peer)
    if url is None:
        options["network_backend"] = backend
    with httpcore.ConnectionPool(max_connections=MAX_CONNECTIONS, **{"timeout": TIMEOUT, **options}) as pool:
        base = url or URL
        for case in cases:
            started = time.monotonic()
            _check(case, _fuzz_request(pool, case, base), started)
            try:
                r = pool.request("GET", f"{base}/good/{case.index}", timeout=TIMEOUT)
            except httpcore.HTTPCoreError as exc:
                raise AssertionError(f"the pool was poisoned by {case}: {exc!r}") from exc
            _check_good(r.body, case.index, max(backend.open_streams(), len(pool.connections)), case)
    assert backend.open_streams() == 0, "streams left open after close()"
    return len(backend.streams)


async def _run_async(
    cases: list[typing.Any], peer: typing.Callable[[], Peer], url: str | None = None, **options: typing.Any
) -> int:
    backend = AsyncMemoryBackend(peer)
    if url is None:
        options["network_backend"] = backend
    async with httpcore.AsyncConnectionPool(
        max_connections=MAX_CONNECTIONS, **{"timeout": TIMEOUT, **options}
    ) as pool:
        base = url or URL
        for case in cases:
            started = time.monotonic()
            _check(case, await _fuzz_request_async(pool, case, base), started)
            try:
                r = await pool.request("GET", f"{base}/good/{case.index}", timeout=TIMEOUT)
            except httpcore.HTTPCoreError as exc:
                raise AssertionError(f"the pool was poisoned by {case}: {exc!r}") from exc
            _check_good(r.body, case.index, max(backend.open_streams(), len(pool.connections)), case)
    assert backend.open_streams() == 0, "streams left open after close()"
    return len(backend.streams)


def serve_peers(peer: typing.Callable[[], Peer], stall: float) -> Handler:
    """A RawServer handler: each connection is served by a new peer, over the socket
    (a queued reset is a TCP reset, a stall is ``stall`` seconds of silence)."""

    def handler(conn: RawConnection) -> None:
        server = peer()
        while True:
            while server.outgoing:
                item = server.outgoing.popleft()
                if item is RESET:
                    conn.reset()
                    return
                if item is STALL:
                    conn.sleep(stall)
                else:
                    conn.send(item)
            if server.ended or server.dead:
                return  # RawServer closes it
            data = conn.recv(65536, timeout=10.0)
            if not data:
                return
            server.write(data)

    return handler


def run_h1(seed: int, count: int) -> int:
    """``count`` HTTP/1.1 cases through one sync pool; returns the connections opened."""
    cases = h1.make_cases(seed, count)
    return _run(cases, lambda: h1.H1Peer(cases))


def run_h1_async(seed: int, count: int) -> int:
    cases = h1.make_cases(seed, count)
    return asyncio.run(_run_async(cases, lambda: h1.H1Peer(cases)))


def run_h2(seed: int, count: int) -> int:
    """``count`` HTTP/2 frame sequences through one sync pool (prior knowledge)."""
    cases = h2.make_cases(seed, count)
    return _run(cases, lambda: h2.H2Peer(cases), http1=False, http2=True)


def run_h2_async(seed: int, count: int) -> int:
    cases = h2.make_cases(seed, count)
    return asyncio.run(_run_async(cases, lambda: h2.H2Peer(cases), http1=False, http2=True))


SOCKET_TIMEOUT = httpcore.Timeout(2.0, read=0.1)  # a stall over a real socket costs this


def run_h2_over(url: str, cases: list[h2.Case]) -> None:
    """HTTP/2 cases through one sync pool over real sockets to ``serve_peers``'s server."""
    _run(cases, lambda: h2.H2Peer(cases), url, http1=False, http2=True, timeout=SOCKET_TIMEOUT)


def run_h2_over_async(url: str, cases: list[h2.Case]) -> None:
    coroutine = _run_async(
        cases, lambda: h2.H2Peer(cases), url, http1=False, http2=True, timeout=SOCKET_TIMEOUT
    )
    asyncio.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=50_000, help="HTTP/1.1 cases, sync and async each")
    parser.add_argument("--http2-cases", type=int, default=None, help="HTTP/2 cases (default: cases / 5)")
    args = parser.parse_args()
    http2_cases = args.cases // 5 if args.http2_cases is None else args.http2_cases
    for name, run, count in (
        ("HTTP/1.1 sync", run_h1, args.cases),
        ("HTTP/1.1 async", run_h1_async, args.cases),
        ("HTTP/2 sync", run_h2, http2_cases),
        ("HTTP/2 async", run_h2_async, http2_cases),
    ):
        started = time.monotonic()
        connections = run(args.seed, count)
        elapsed = time.monotonic() - started
        print(f"{name}: {count} cases, seed {args.seed}, {connections} connections, {elapsed:.1f} s")


if __name__ == "__main__":
    main()
