"""Our own CPU per request with the network taken out: a steadier instrument than nginx.

A canned-response network backend (given to the pool through ``network_backend=``)
answers every request with the same nginx-like response, so what is measured is only
our code and h11: no syscalls, no scheduler, no other core. On this 2-core shared
machine a loopback run of the same change varies by ±10%; this varies by about ±2%, so
it is the one to use for A/B of a code-path change (then confirm with ``make bench``).
Absolute figures are lower than in the loopback runs (caches stay warm here).

    .venv/bin/python bench/inmemory.py                      # this repo
    .venv/bin/python bench/inmemory.py --ours-root /tmp/ours-REV --rounds 5

It also times the same GET through h11 alone (the floor of any h11-based client), and a
16 MiB download delivered in 256 KiB chunks as asyncio's transport delivers them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import typing

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 24 Nov 2026 14:13:58 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nHello world!"
)
BIG = 16 * 1024 * 1024
BIG_HEAD = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: %d\r\n\r\n" % BIG
CHUNK = 256 * 1024
URL = "http://127.0.0.1:8080/"


def backends(httpcore: typing.Any) -> tuple[typing.Any, typing.Any]:
    from httpcore._backends.base import (
        AsyncNetworkBackend,
        AsyncNetworkStream,
        NetworkBackend,
        NetworkStream,
    )

    class Canned(NetworkStream):
        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return RESPONSE

        def write(self, data: bytes, timeout: float | None = None) -> None:
            pass

        def close(self) -> None:
            pass

        def is_readable(self) -> bool:
            return False

    class CannedBackend(NetworkBackend):
        def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> NetworkStream:
            return Canned()

    class AsyncCanned(AsyncNetworkStream):
        """GET / answers RESPONSE; GET /16m answers a 16 MiB body in 256 KiB chunks."""

        def __init__(self) -> None:
            self.big_asked = False
            self.left = 0
            self.source = bytearray(CHUNK)

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            if self.big_asked:
                self.big_asked = False
                self.left = BIG
                return BIG_HEAD
            if self.left:
                self.left -= CHUNK
                return bytes(self.source)  # a fresh object, as the transport hands out
            return RESPONSE

        async def write(self, data: bytes, timeout: float | None = None) -> None:
            self.big_asked = data.startswith(b"GET /16m")

        async def aclose(self) -> None:
            pass

        def is_readable(self) -> bool:
            return False

    class AsyncCannedBackend(AsyncNetworkBackend):
        async def connect_tcp(self, *args: typing.Any, **kwargs: typing.Any) -> AsyncNetworkStream:
            return AsyncCanned()

    return CannedBackend(), AsyncCannedBackend()


def per_call(fn: typing.Callable[[], object], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        fn()
    return (time.process_time() - start) / count * 1e6


def sync_get(httpcore: typing.Any, count: int) -> float:
    backend, _ = backends(httpcore)
    with httpcore.ConnectionPool(network_backend=backend) as http:
        per_call(lambda: http.request("GET", URL), 1000)
        return per_call(lambda: http.request("GET", URL), count)


def async_run(httpcore: typing.Any, count: int, path: str) -> float:
    _, backend = backends(httpcore)
    big = path == "/16m"

    async def main() -> float:
        async with httpcore.AsyncConnectionPool(network_backend=backend) as http:

            async def one() -> None:
                if big:
                    async with http.stream("GET", URL[:-1] + path) as r:
                        async for _ in r.stream():
                            pass
                else:
                    await http.request("GET", URL)

            for _ in range(3 if big else 1000):
                await one()
            start = time.process_time()
            for _ in range(count):
                await one()
            return (time.process_time() - start) / count * 1e6

    return asyncio.run(main())


def h11_floor(count: int) -> float:
    import h11

    conn = h11.Connection(h11.CLIENT)
    headers = [(b"Host", b"127.0.0.1:8080")]

    def one() -> None:
        conn.send(h11.Request(method=b"GET", target=b"/", headers=headers))
        conn.send(h11.EndOfMessage())
        conn.receive_data(RESPONSE)
        while type(conn.next_event()) is not h11.EndOfMessage:
            pass
        conn.start_next_cycle()

    per_call(one, 1000)
    return per_call(one, count)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours-root", help="directory holding the httpcore package to measure")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=50000, help="GETs per round")
    args = ap.parse_args()
    if args.ours_root:
        sys.path.insert(0, args.ours_root)
    import httpcore

    cases: dict[str, typing.Callable[[], float]] = {
        "h11 alone, GET (us)": lambda: h11_floor(args.count),
        "sync GET (us)": lambda: sync_get(httpcore, args.count),
        "async GET (us)": lambda: async_run(httpcore, args.count, "/"),
        "async 16 MiB download (us)": lambda: async_run(httpcore, 20, "/16m"),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            results[name].append(case())
    print(f"httpcore from {httpcore.__file__}")
    for name, values in results.items():
        print(f"{name:30} median {statistics.median(values):9.1f}   min {min(values):9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
