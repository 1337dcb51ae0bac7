"""Shared harness for the per-client benchmark scripts (stdlib only).

Each `bench/clients/<client>.py` only adapts one HTTP client to a tiny interface
(a `Sync` and/or an `Async` class with `get`, `download`, `upload`, `close` and a
static `tls_get`; for the HTTP/2 scenarios an `H2` class built as `H2(connections, ca)`
with async `start`, `get`, `version` and `close`) and calls `main(Sync, Async, H2)`.
This module owns everything that must be identical across clients so the comparison
is fair: the scenarios, the request loops (bounded in count AND wall time), the
warm-up, the response checks (status and body length), and the measurement (wall
time, CPU time of the whole process from getrusage(RUSAGE_SELF) around the timed
part only, peak RSS).

It runs under whichever interpreter the client needs (the project's venv for
"ours", bench/.venv-peers for the peers), so it must not import anything but the
standard library.  Output: exactly one JSON line on stdout; exit status 0 only if
every request of the scenario succeeded and was checked.

Command line (what bench/run.py calls):
  python clients/<client>.py SCENARIO --http-url URL --https-url URL [--h2-url URL]
         --ca CA.pem --count N --seconds S [--loop asyncio|uvloop|trio]

With ``--loop trio`` the async scenarios run under ``trio.run`` (trio is imported only
then), the tasks started in a nursery instead of ``asyncio.gather``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

HELLO_LEN = 12
BIG = 16 * 1024 * 1024
UPLOAD_REPLY_LEN = 2  # b"ok"


@dataclass(frozen=True)
class Scenario:
    mode: str  # "sync" | "async"
    op: str  # "get" | "download" | "upload" | "tls" | "h2"
    connections: int  # pool size
    workers: int  # threads or asyncio tasks issuing requests concurrently


SCENARIOS: dict[str, Scenario] = {
    "seq_sync": Scenario("sync", "get", 1, 1),
    "seq_async": Scenario("async", "get", 1, 1),
    "async_100x10": Scenario("async", "get", 10, 100),
    "async_100x100": Scenario("async", "get", 100, 100),
    # The same pool cap (100 connections) at two concurrencies: what a request costs as
    # the number of waiting tasks grows (issue 13: no decay from 16 to 512 tasks).
    "async_16x100": Scenario("async", "get", 100, 16),
    "async_512x100": Scenario("async", "get", 100, 512),
    "threads_8": Scenario("sync", "get", 8, 8),
    "download_sync": Scenario("sync", "download", 1, 1),
    "download_async": Scenario("async", "download", 1, 1),
    "upload_sync": Scenario("sync", "upload", 1, 1),
    "upload_async": Scenario("async", "upload", 1, 1),
    "tls_sync": Scenario("sync", "tls", 1, 1),
    "tls_async": Scenario("async", "tls", 1, 1),
    # HTTP/2 over TLS (ALPN h2), GET / on ONE connection: sequential, and 100 concurrent streams.
    "h2_seq_async": Scenario("async", "h2", 1, 1),
    "h2_100_streams": Scenario("async", "h2", 1, 100),
    # HTTP/2 from 8 threads sharing one sync client (and so one connection).
    "h2_threads_8": Scenario("sync", "h2", 1, 8),
}


@dataclass
class Config:
    scenario: str
    http_url: str
    https_url: str
    h2_url: str
    ca: str
    count: int
    seconds: float
    loop: str


class CheckError(Exception):
    pass


def _expect(op: str) -> tuple[int, int]:
    return {
        "get": (200, HELLO_LEN),
        "tls": (200, HELLO_LEN),
        "h2": (200, HELLO_LEN),
        "download": (200, BIG),
        "upload": (200, UPLOAD_REPLY_LEN),
    }[op]


def _check(op: str, got: tuple[int, int]) -> None:
    want = _expect(op)
    if tuple(got) != want:
        raise CheckError(f"{op}: got (status, body length) {tuple(got)}, expected {want}")


def _payload_bytes(op: str) -> int:
    """Bytes that count for MB/s: the body downloaded or uploaded."""
    return BIG if op in ("download", "upload") else 0


# ---------------------------------------------------------------- drivers


def _sync_loop(
    one: Callable[[], tuple[int, int]], op: str, workers: int, count: int, deadline: float
) -> tuple[int, float]:
    """Run `one()` from `workers` threads until `count` calls were started or time ran out.

    Returns (requests completed, slowest single request in seconds).
    """
    claim = itertools.count()  # next() on it is atomic in CPython
    stop = threading.Event()
    done = [0] * workers
    slowest = [0.0] * workers
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        clock = time.perf_counter
        worst = 0.0
        try:
            while not stop.is_set() and next(claim) < count and (t := clock()) < deadline:
                _check(op, one())
                worst = max(worst, clock() - t)
                done[i] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            stop.set()
        slowest[i] = worst

    if workers == 1:
        worker(0)
    else:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return sum(done), max(slowest)


async def _async_loop(
    one: Callable[[], Awaitable[tuple[int, int]]], op: str, workers: int, count: int, deadline: float
) -> tuple[int, float]:
    """Run `one()` from `workers` tasks; returns (requests completed, slowest request in s)."""
    done = 0
    started = 0
    slowest = 0.0

    async def worker() -> None:
        nonlocal started, done, slowest
        clock = time.perf_counter
        while started < count and (t := clock()) < deadline:
            started += 1
            _check(op, await one())
            slowest = max(slowest, clock() - t)
            done += 1

    await _run_tasks(worker, workers)
    return done, slowest


def _in_trio(trio: Any) -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def _run_tasks(task: Callable[[], Awaitable[None]], count: int) -> None:
    """Run ``count`` copies of ``task`` concurrently, with the running library."""
    trio: Any = sys.modules.get("trio")
    if trio is not None and _in_trio(trio):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(task)
    else:
        await asyncio.gather(*(task() for _ in range(count)))


def _warmup_plan(cfg: Config, sc: Scenario) -> tuple[int, float]:
    n = max(2, cfg.count // 10, 2 * sc.workers)
    return n, min(0.5, cfg.seconds / 4)


class _Meter:
    def __enter__(self) -> _Meter:
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.user = r1.ru_utime - self.r0.ru_utime
        self.sys = r1.ru_stime - self.r0.ru_stime


def _result(cfg: Config, sc: Scenario, n: int, slowest: float, m: _Meter) -> dict[str, Any]:
    cpu = m.user + m.sys
    nbytes = n * _payload_bytes(sc.op)
    return {
        "ok": True,
        "scenario": cfg.scenario,
        "requests": n,
        "wall_s": m.wall,
        "cpu_user_s": m.user,
        "cpu_sys_s": m.sys,
        "rps": n / m.wall if m.wall > 0 else 0.0,
        "cpu_us_per_req": 1e6 * cpu / n if n else None,
        "mb_per_s": (nbytes / m.wall / 1e6) if nbytes and m.wall > 0 else None,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "slowest_request_s": slowest,  # warm-up included; in async/threads includes pool waits
        "python": sys.version.split()[0],
        "loop": cfg.loop if sc.mode == "async" else None,
    }


# ---------------------------------------------------------------- scenario runners


def _op_url(cfg: Config, op: str) -> str:
    return {
        "get": cfg.http_url + "/",
        "download": cfg.http_url + "/16m",
        "upload": cfg.http_url + "/sink",
        "tls": cfg.https_url + "/",
        "h2": cfg.h2_url + "/",
    }[op]


def run_sync(cls: Any, cfg: Config, sc: Scenario) -> dict[str, Any]:
    url = _op_url(cfg, sc.op)
    client = None
    if sc.op == "tls":
        ca = cfg.ca

        def one() -> tuple[int, int]:
            return cls.tls_get(url, ca)  # type: ignore[no-any-return]
    else:
        client = cls(sc.connections, cfg.ca) if sc.op == "h2" else cls(sc.connections)
        if sc.op in ("get", "h2"):

            def one() -> tuple[int, int]:
                return client.get(url)  # type: ignore[no-any-return]
        elif sc.op == "download":

            def one() -> tuple[int, int]:
                return client.download(url)  # type: ignore[no-any-return]
        else:
            body = b"\x5a" * BIG

            def one() -> tuple[int, int]:
                return client.upload(url, body)  # type: ignore[no-any-return]

    try:
        wn, ws = _warmup_plan(cfg, sc)
        _, slow0 = _sync_loop(one, sc.op, sc.workers, wn, time.perf_counter() + ws)
        with _Meter() as m:
            n, slow = _sync_loop(one, sc.op, sc.workers, cfg.count, time.perf_counter() + cfg.seconds)
        extra = _check_h2_version(client.version(url), url, sc.connections) if sc.op == "h2" else {}
    finally:
        if client is not None:
            client.close()
    res = _result(cfg, sc, n, max(slow0, slow), m)
    res.update(extra)
    return res


async def _run_async(cls: Any, cfg: Config, sc: Scenario) -> dict[str, Any]:
    url = _op_url(cfg, sc.op)
    client = None
    if sc.op == "tls":
        ca = cfg.ca

        async def one() -> tuple[int, int]:
            return await cls.tls_get(url, ca)  # type: ignore[no-any-return]
    else:
        client = cls(sc.connections, cfg.ca) if sc.op == "h2" else cls(sc.connections)
        await client.start()
        if sc.op in ("get", "h2"):

            async def one() -> tuple[int, int]:
                return await client.get(url)  # type: ignore[no-any-return]
        elif sc.op == "download":

            async def one() -> tuple[int, int]:
                return await client.download(url)  # type: ignore[no-any-return]
        else:
            body = b"\x5a" * BIG

            async def one() -> tuple[int, int]:
                return await client.upload(url, body)  # type: ignore[no-any-return]

    extra: dict[str, Any] = {}
    try:
        wn, ws = _warmup_plan(cfg, sc)
        _, slow0 = await _async_loop(one, sc.op, sc.workers, wn, time.perf_counter() + ws)
        with _Meter() as m:
            n, slow = await _async_loop(one, sc.op, sc.workers, cfg.count, time.perf_counter() + cfg.seconds)
        if sc.op == "h2":
            extra = await _check_h2(client, url, sc.connections)
    finally:
        if client is not None:
            await client.close()
    res = _result(cfg, sc, n, max(slow0, slow), m)
    if sc.op == "h2":
        res.update(extra)
    return res


async def _check_h2(client: Any, url: str, connections: int) -> dict[str, Any]:
    """After the timed part: the requests really went over HTTP/2, on `connections` connection(s).

    The version comes from one more request through the adapter; the connections are
    the process's open TCP sockets to the h2 port (Linux /proc; skipped elsewhere).
    """
    return _check_h2_version(await client.version(url), url, connections)


def _check_h2_version(version: str, url: str, connections: int) -> dict[str, Any]:
    if version != "HTTP/2":
        raise CheckError(f"h2: the client spoke {version!r}, not HTTP/2")
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    n = _open_tcp_connections(port)
    if n is not None and n != connections:
        raise CheckError(f"h2: {n} open connections to the server, expected {connections}")
    return {"http_version": version, "h2_connections": n}


def _open_tcp_connections(port: int) -> int | None:
    """Established TCP connections of THIS process to 127.0.0.1:`port`, or None without /proc."""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                n += 1
        return n
    except OSError:
        return None


def run_async(cls: Any, cfg: Config, sc: Scenario) -> dict[str, Any]:
    if cfg.loop == "trio":
        import trio  # only for --loop trio

        result: dict[str, Any] = trio.run(_run_async, cls, cfg, sc)
        return result
    if cfg.loop == "uvloop":
        import uvloop  # peers venv; ours' venv gets it from bench/requirements-ours.txt

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run_async(cls, cfg, sc))
    return asyncio.run(_run_async(cls, cfg, sc))


# ---------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> Config:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--http-url", required=True)
    ap.add_argument("--https-url", required=True)
    ap.add_argument("--h2-url", default="", help="the HTTP/2 (TLS, ALPN h2) listener")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--loop", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    a = ap.parse_args(argv)
    return Config(
        a.scenario,
        a.http_url.rstrip("/"),
        a.https_url.rstrip("/"),
        a.h2_url.rstrip("/"),
        a.ca,
        a.count,
        a.seconds,
        a.loop,
    )


def main(sync_cls: Any = None, async_cls: Any = None, h2_cls: Any = None, h2_sync_cls: Any = None) -> None:
    """Run the scenario named on the command line with the given adapter classes; print JSON."""
    cfg = parse_args()
    sc = SCENARIOS[cfg.scenario]
    if sc.op == "h2":
        cls = h2_sync_cls if sc.mode == "sync" else h2_cls
    else:
        cls = sync_cls if sc.mode == "sync" else async_cls
    if cls is None:
        kind = "h2" if sc.op == "h2" else sc.mode
        print(
            json.dumps(
                {"ok": False, "scenario": cfg.scenario, "unsupported": True, "error": f"no {kind} adapter"}
            )
        )
        sys.exit(3)
    try:
        res = run_sync(cls, cfg, sc) if sc.mode == "sync" else run_async(cls, cfg, sc)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an error row
        traceback.print_exc(file=sys.stderr)
        print(
            json.dumps({"ok": False, "scenario": cfg.scenario, "error": f"{type(exc).__name__}: {exc}"[:500]})
        )
        sys.stdout.flush()
        sys.exit(1)
    if res["requests"] == 0:
        res["ok"] = False
        res["error"] = "no request completed"
    print(json.dumps(res))
    sys.stdout.flush()
    sys.exit(0 if res["ok"] else 1)
