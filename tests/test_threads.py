"""64 threads share one ConnectionPool against slow and broken servers.

Each thread runs a seeded mix of requests through the one pool, with short timeouts:
good ones (which must get their own response: nothing crossed), slow ones (past the
read timeout), broken ones (reset, truncated, garbage), streamed ones read part-way and
closed, and streamed ones abandoned unclosed for the garbage collector. Then ``close()``
races the requests still in flight. Nothing may escape but ``HTTPCoreError`` (a request
racing ``close()`` gets ``PoolClosed`` or completes), no thread may hang (every join is
bounded), and the leak check (conftest) fails the test on any socket left open.
"""

from __future__ import annotations

import gc
import random
import threading
import time
import traceback
import typing
from collections.abc import Iterator

import pytest

import httpcore
from tests.servers.asgi_server import HypercornServer
from tests.servers.raw import RawConnection, RawServerFactory, chunked, good_or, ok, response

THREADS = 64
SEED = 7
RUN_FOR = 1.5  # seconds of traffic before close() is called
JOIN_BOUND = 10.0  # seconds for every thread to finish after close()
TIMEOUT = httpcore.Timeout(2.0, read=0.2, pool=2.0)


def fault(conn: RawConnection, request: bytes) -> bool:
    """``/slow``, ``/reset``, ``/truncated``, ``/garbage`` and ``/stream`` misbehave; the
    connection goes on serving only after a complete answer."""
    target = request.split(b" ", 2)[1]
    if target.startswith(b"/delayed/"):  # a good answer, within the read timeout
        conn.sleep(0.05)
        conn.send(ok(b"good:" + target[9:]))
        return True
    if target == b"/slow":
        conn.sleep(0.5)  # past the read timeout
        conn.send(ok(b"late"))
        return True
    if target == b"/reset":
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")
        conn.reset()
        return False
    if target == b"/truncated":
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-len")
        return False
    if target == b"/garbage":
        conn.send(b"\x00\xffnot http at all\r\n\r\n")
        return False
    if target == b"/stream":
        conn.send(
            response(
                200, chunked(*[b"s" * 1000] * 64), [(b"transfer-encoding", b"chunked")], content_length=False
            )
        )
        return True
    conn.send(response(404))
    return True


# kind -> (weight, what it does); a good kind's answer must carry its own token.
Kind = typing.Callable[["Worker", str], None]


class Worker:
    """One thread's seeded loop of requests; what went wrong is kept for the test."""

    def __init__(
        self, index: int, pool: httpcore.ConnectionPool, url: str, kinds: dict[str, tuple[int, Kind]]
    ) -> None:
        self.index = index
        self.pool = pool
        self.url = url
        self.kinds = kinds
        self.random = random.Random(SEED * 1000 + index)
        self.closing = threading.Event()  # set just before the test calls close()
        self.escaped: list[str] = []  # anything not an HTTPCoreError, with its traceback
        self.crossed: list[str] = []  # a good request that got another one's response
        self.failed_good: list[str] = []  # a good request that failed before close()
        self.good = 0
        self.requests = 0
        self.closed_seen = False

    def run(self) -> None:
        names = list(self.kinds)
        weights = [self.kinds[name][0] for name in names]
        try:
            while self.requests < 10_000:
                self.requests += 1
                kind = self.random.choices(names, weights)[0]
                try:
                    self.kinds[kind][1](self, kind)
                except httpcore.PoolClosed:
                    self.closed_seen = True
                    return
                except httpcore.HTTPCoreError as exc:
                    if (
                        kind in GOOD
                        and not self.closing.is_set()
                        and not isinstance(exc, httpcore.TimeoutException)
                    ):
                        self.failed_good.append(f"{kind}: {exc!r}")  # a timeout: the machine is busy
        except BaseException:  # noqa: BLE001 - reported by the test
            self.escaped.append(traceback.format_exc())

    def good_request(self, path: str, expected: bytes) -> None:
        r = self.pool.request("GET", f"{self.url}{path}")
        if r.body != expected:
            self.crossed.append(f"{path}: {r.body!r}")
        self.good += 1


GOOD = frozenset({"good", "delayed"})


def good(worker: Worker, kind: str) -> None:
    token = f"{worker.index}-{worker.requests}"
    worker.good_request(f"/{kind}/{token}", b"good:" + token.encode())


def plain(path: str) -> Kind:
    def request(worker: Worker, kind: str) -> None:
        worker.pool.request("GET", f"{worker.url}{path}")

    return request


def read_some(path: str) -> Kind:
    def request(worker: Worker, kind: str) -> None:
        with worker.pool.stream("GET", f"{worker.url}{path}") as r:
            for _ in zip(range(3), r.stream(), strict=False):
                pass

    return request


def abandon(path: str) -> Kind:
    """Read one chunk and drop the response unclosed: the garbage collector finalises it."""

    def request(worker: Worker, kind: str) -> None:
        r = worker.pool.request("GET", f"{worker.url}{path}", stream=True)
        next(iter(r.stream()))
        del r
        if worker.random.random() < 0.1:
            gc.collect()

    return request


def run_threads(pool: httpcore.ConnectionPool, url: str, kinds: dict[str, tuple[int, Kind]]) -> list[Worker]:
    """THREADS workers for RUN_FOR seconds, then close() racing them; every check but the
    leak check (the fixture's)."""
    workers = [Worker(index, pool, url, kinds) for index in range(THREADS)]
    threads = [threading.Thread(target=w.run, name=f"worker-{w.index}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    time.sleep(RUN_FOR)
    for worker in workers:
        worker.closing.set()
    pool.close()  # races whatever is in flight
    deadline = time.monotonic() + JOIN_BOUND
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert hung == [], f"threads still running {JOIN_BOUND} s after close(): {hung}"
    escaped = [text for w in workers for text in w.escaped]
    assert escaped == [], "\n".join(escaped[:3])
    assert [text for w in workers for text in w.crossed] == []
    assert [text for w in workers for text in w.failed_good] == []
    # Every thread learned of close() (its next request got PoolClosed)...
    assert [w.index for w in workers if not w.closed_seen] == []
    # ...and the traffic before it was real (a loose bound: a busy machine serves less).
    assert sum(w.good for w in workers) >= THREADS // 8
    assert pool.connections == []
    with pytest.raises(httpcore.PoolClosed):
        pool.request("GET", f"{url}/")
    return workers


def test_http11_threads_against_slow_and_broken_servers(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(fault), timeout=5.0)
    kinds: dict[str, tuple[int, Kind]] = {
        "good": (25, good),
        "delayed": (20, good),
        "slow": (8, plain("/slow")),
        "reset": (8, plain("/reset")),
        "truncated": (8, plain("/truncated")),
        "garbage": (8, plain("/garbage")),
        "read-some": (12, read_some("/stream")),
        "abandon": (11, abandon("/stream")),
    }
    pool = httpcore.ConnectionPool(timeout=TIMEOUT, max_connections=16, max_keepalive_connections=8)
    run_threads(pool, srv.url, kinds)


@pytest.fixture(scope="module")
def h2c_unlimited() -> Iterator[HypercornServer]:
    """hypercorn h2c without its limit of 1000 requests per connection (past it, it
    answers the streams still arriving with a GOAWAY that fails those in flight)."""
    srv = HypercornServer()
    srv.config.keep_alive_max_requests = 1_000_000
    with srv:
        yield srv


def test_http2_threads_share_connections_with_abandoned_streams(h2c_unlimited: HypercornServer) -> None:
    # Many streams per connection: one stream dropped to the collector, read part-way or
    # timed out must not fail its neighbours.
    h2c_server = h2c_unlimited

    def good_h2(worker: Worker, kind: str) -> None:
        token = f"{worker.index}-{worker.requests}"
        r = worker.pool.request("POST", f"{worker.url}/echo_body", body=token.encode())
        if r.body != token.encode():
            worker.crossed.append(f"{token}: {r.body!r}")
        worker.good += 1

    kinds: dict[str, tuple[int, Kind]] = {
        "good": (40, good_h2),
        "slow": (10, plain("/slow_headers?delay=0.5")),
        "read-some": (20, read_some("/stream?size=200000&chunk=1000")),
        "abandon": (20, abandon("/stream?size=200000&chunk=1000")),
        "not-found": (10, plain("/nowhere")),
    }
    pool = httpcore.ConnectionPool(http1=False, http2=True, timeout=TIMEOUT, max_connections=4)
    run_threads(pool, h2c_server.url, kinds)
