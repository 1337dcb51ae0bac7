"""A seeded fuzz of HTTP/1.1 responses through one shared pool, sync and async.

Each case mutates a valid response (flipped, inserted and deleted bytes, truncation,
extra bytes, conflicting lengths, broken chunking, 1xx noise) and delivers it one of
several ways (then close, kept open, reset, drip, stall past the read timeout). Between
cases a good request on the same origin must get its own response, so a poisoned pool
shows at once. Only httpcore errors may escape, no case may hang, and no file
descriptor may leak. ``HTTPCORE_FUZZ_SEED`` and ``HTTPCORE_FUZZ_CASES`` override the
defaults to explore further. This is the real-socket part; the volume (the same cases by
the thousand) runs in memory, in tests/test_fuzz_memory.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading
import time
import typing

import httpcore
from tests.fuzzing.h1 import Case, make_cases
from tests.servers.raw import RawConnection, RawServer, good_or

SEED = int(os.environ.get("HTTPCORE_FUZZ_SEED", "1105"))
CASES = int(os.environ.get("HTTPCORE_FUZZ_CASES", "200"))
READ_TIMEOUT = 0.1
TIMEOUT = httpcore.Timeout(2.0, read=READ_TIMEOUT)
CASE_BOUND = 2.0  # seconds any one case may take, whatever the server does
# The well-formed request after each case: its answer may be late on a loaded machine
# without the pool being at fault, so it gets more than the fuzz cases' short timeout.
GOOD_TIMEOUT = httpcore.Timeout(5.0)
TOTAL_BOUND = 15.0 * CASES / 300  # seconds for a whole run (about 3 s for 200 cases)


class FuzzServer(RawServer):
    """Answers ``/fuzz/<i>`` with case i and ``/good/<token>`` correctly; ``done[i]`` is
    set once case i was delivered in full (and, unless kept open, ended by a FIN or RST)."""

    def __init__(self, cases: list[Case]) -> None:
        super().__init__(good_or(self._fault), timeout=5.0)
        self.cases = cases
        self.done = [threading.Event() for _ in cases]

    def _fault(self, conn: RawConnection, request: bytes) -> bool:
        index = int(request.split(b" ", 2)[1].rsplit(b"/", 1)[1])
        case = self.cases[index]
        data = case.data
        try:
            if case.delivery == "keep":
                conn.send(data)
                return True
            if case.delivery == "reset":
                conn.send(data)
                conn.sleep(0.002)
                conn.reset()
                return False
            if case.delivery == "drip":
                conn.send_slowly(data, max(1, len(data) // 16), 0.001)
            elif case.delivery == "stall":
                conn.send(data[: len(data) // 2])
                conn.sleep(READ_TIMEOUT * 2)
                conn.send(data[len(data) // 2 :])
            else:
                conn.send(data)
            conn.shutdown_write()
        finally:
            self.done[index].set()
        conn.close(linger=0.2)
        return False

    def wait_delivered(self, case: Case, outcome: object) -> None:
        """Bytes still on their way when the next request starts could be taken for its
        response by any HTTP/1.1 client: that race is not what this fuzz looks for."""
        assert self.done[case.index].wait(CASE_BOUND), f"the server never finished {case}: {outcome!r}"


def fuzz_server(cases: list[Case]) -> FuzzServer:
    server = FuzzServer(cases)
    server.start()
    return server


def open_fd_count() -> int:
    """How many file descriptors this process holds, less the one that listed them."""
    gc.collect()
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        count += 1
    return count


def check_outcome(case: Case, outcome: object, elapsed: float) -> None:
    assert elapsed < CASE_BOUND, f"took {elapsed:.2f}s: {case}"
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, httpcore.HTTPCoreError), f"{outcome!r} escaped: {case}"


def check_good(body: bytes, token: int, pool: typing.Any, case: Case, limit: int = 2) -> None:
    assert body == b"good:%d" % token, f"the pool was poisoned by {case}: got {body!r}"
    assert len(pool.connections) <= limit, f"{pool!r} after {case}"


def run_case(pool: httpcore.ConnectionPool, server: FuzzServer, case: Case, wait: bool = True) -> None:
    """The fuzz request, which may fail only with an httpcore error, then a good one."""
    url = f"{server.url}/fuzz/{case.index}"
    body = b"body" if case.method == "POST" else None
    started = time.monotonic()
    outcome: object
    try:
        if case.read_limit is None:
            outcome = pool.request(case.method, url, body=body)
        else:
            with pool.stream(case.method, url, body=body) as r:
                received = 0
                for chunk in r.stream():
                    received += len(chunk)
                    if received >= case.read_limit:
                        break
            outcome = r
    except Exception as exc:  # noqa: BLE001 - check_outcome tells which are fine
        outcome = exc
    check_outcome(case, outcome, time.monotonic() - started)
    if wait:
        server.wait_delivered(case, outcome)


def run_good(pool: httpcore.ConnectionPool, server: FuzzServer, case: Case, limit: int = 2) -> None:
    try:
        r = pool.request("GET", f"{server.url}/good/{case.index}", timeout=GOOD_TIMEOUT)
    except httpcore.HTTPCoreError as exc:
        raise AssertionError(f"the pool was poisoned by {case}: {exc!r}") from exc
    check_good(r.body, case.index, pool, case, limit)


async def run_case_async(
    pool: httpcore.AsyncConnectionPool, server: FuzzServer, case: Case, wait: bool = True
) -> None:
    url = f"{server.url}/fuzz/{case.index}"
    body = b"body" if case.method == "POST" else None
    started = time.monotonic()
    outcome: object
    try:
        if case.read_limit is None:
            outcome = await pool.request(case.method, url, body=body)
        else:
            async with pool.stream(case.method, url, body=body) as r:
                received = 0
                async for chunk in r.stream():
                    received += len(chunk)
                    if received >= case.read_limit:
                        break
            outcome = r
    except Exception as exc:  # noqa: BLE001 - check_outcome tells which are fine
        outcome = exc
    check_outcome(case, outcome, time.monotonic() - started)
    if wait:
        server.wait_delivered(case, outcome)
        await asyncio.sleep(0.002)  # a loop turn or two, to take in what arrived


async def run_good_async(
    pool: httpcore.AsyncConnectionPool, server: FuzzServer, case: Case, limit: int = 2
) -> None:
    try:
        r = await pool.request("GET", f"{server.url}/good/{case.index}", timeout=GOOD_TIMEOUT)
    except httpcore.HTTPCoreError as exc:
        raise AssertionError(f"the pool was poisoned by {case}: {exc!r}") from exc
    check_good(r.body, case.index, pool, case, limit)


def test_fuzz_http11_sync() -> None:
    cases = make_cases(SEED, CASES)
    fds_before = open_fd_count()
    server = fuzz_server(cases)
    started = time.monotonic()
    try:
        with httpcore.ConnectionPool(timeout=TIMEOUT, max_connections=4) as pool:
            for case in cases:
                run_case(pool, server, case)
                run_good(pool, server, case)
    finally:
        server.stop()
    assert time.monotonic() - started < TOTAL_BOUND
    assert server.errors == []
    assert open_fd_count() <= fds_before + 2


async def test_fuzz_http11_async() -> None:
    cases = make_cases(SEED + 1, CASES)
    fds_before = open_fd_count()
    server = fuzz_server(cases)
    started = time.monotonic()
    try:
        async with httpcore.AsyncConnectionPool(timeout=TIMEOUT, max_connections=4) as pool:
            for case in cases:
                await run_case_async(pool, server, case)
                await run_good_async(pool, server, case)
    finally:
        server.stop()
    for _ in range(3):  # closed transports release their sockets on the next loop turns
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < TOTAL_BOUND
    assert server.errors == []
    assert open_fd_count() <= fds_before + 2


# Concurrent: more workers than connections, so faults also meet the pool's queue. Only
# responses sent in one piece, so none can still be arriving when a worker's next request
# reuses the connection. A fuzz request may then also meet a connection the server is
# closing (and fail, if it is a POST); the good GETs after them must always succeed.
WORKERS = 8
CONCURRENT_CASES = CASES // 2


def concurrent_cases(seed: int) -> list[Case]:
    cases = make_cases(seed, CONCURRENT_CASES)
    for case in cases:
        if case.delivery in ("drip", "stall") or len(case.data) > 60_000:
            case.delivery = "close"
    return cases


def test_fuzz_http11_concurrent_sync() -> None:
    cases = concurrent_cases(SEED + 2)
    fds_before = open_fd_count()
    server = fuzz_server(cases)
    started = time.monotonic()

    def worker(offset: int) -> None:
        for case in cases[offset::WORKERS]:
            run_case(pool, server, case, wait=False)
            run_good(pool, server, case, limit=4)

    try:
        with (
            httpcore.ConnectionPool(timeout=TIMEOUT, max_connections=4) as pool,
            concurrent.futures.ThreadPoolExecutor(WORKERS) as executor,
        ):
            for future in [executor.submit(worker, offset) for offset in range(WORKERS)]:
                future.result()
    finally:
        server.stop()
    assert time.monotonic() - started < TOTAL_BOUND
    assert server.errors == []
    assert open_fd_count() <= fds_before + 2


async def test_fuzz_http11_concurrent_async() -> None:
    cases = concurrent_cases(SEED + 3)
    fds_before = open_fd_count()
    server = fuzz_server(cases)
    started = time.monotonic()

    async def worker(offset: int) -> None:
        for case in cases[offset::WORKERS]:
            await run_case_async(pool, server, case, wait=False)
            await run_good_async(pool, server, case, limit=4)

    try:
        async with httpcore.AsyncConnectionPool(timeout=TIMEOUT, max_connections=4) as pool:
            await asyncio.gather(*(worker(offset) for offset in range(WORKERS)))
    finally:
        server.stop()
    for _ in range(3):
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < TOTAL_BOUND
    assert server.errors == []
    assert open_fd_count() <= fds_before + 2
