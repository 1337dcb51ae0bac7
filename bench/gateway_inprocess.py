#!/usr/bin/env python3
"""The gateways' own CPU per request, without the ASGI server: the steady A/B instrument.

bench/gateway.py measures whole processes (uvicorn + gateway) under wrk, which on this
shared machine varies by ±15%. Here the gateway's ASGI app is called directly, on
uvloop, by N concurrent loops with minimal ``receive``/``send`` callables, in front of
the benchmark's nginx (started here, pinned to CPU 0; this process to CPU 1), and the
process's CPU time (user + system) per request is reported: only the gateway's code,
its HTTP client and its share of the kernel. Use it to A/B a change, then confirm with
`make bench-gateway`.

    bench/.venv-gateway/bin/python bench/gateway_inprocess.py            # ours and aiohttp
    bench/.venv-gateway/bin/python bench/gateway_inprocess.py --ours-root /tmp/ours-REV
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import nginx as nginx_mod  # noqa: E402

SCENARIOS = {
    "get_small": ("GET", "/", 64, 0),
    "get_1m": ("GET", "/1m", 16, 0),
    "post_1m": ("POST", "/sink", 16, 1 << 20),
}


def load_app(name: str, upstream: str, ours_root: Path) -> Any:
    os.environ["GATEWAY_UPSTREAM"] = upstream
    if name == "ours":
        sys.path.insert(0, str(ours_root))
        from examples import gateway

        return gateway.app
    sys.path.insert(0, str(BENCH / "gateways"))
    import aiohttp_gateway

    return aiohttp_gateway.app


async def one_request(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes, chunk: int
) -> int:
    """One exchange through the ASGI app, with minimal receive/send; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    size = len(body)
    messages = [
        {"type": "http.request", "body": body[i : i + chunk], "more_body": i + chunk < size}
        for i in range(0, max(size, 1), chunk)
    ]
    finished = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            finished.set()

    await app(scope, receive, send)
    return status


async def drive(app: Any, scenario: str, seconds: float, canned: bool) -> tuple[int, float]:
    method, path, concurrency, size = SCENARIOS[scenario]
    body = b"x" * size
    chunk = 64 * 1024
    headers = [(b"host", b"gateway.test"), (b"user-agent", b"bench")]
    if size:
        headers.append((b"content-length", b"%d" % size))
    done = 0
    stop_at = 0.0

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            status = await one_request(app, method, path, headers, body, chunk)
            if status != 200:
                raise RuntimeError(f"status {status}")
            done += 1

    async def lifespan() -> asyncio.Future[None]:
        events = [{"type": "lifespan.startup"}]
        ready = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if events:
                return events.pop(0)
            await asyncio.Event().wait()
            return {}

        async def send(message: dict[str, Any]) -> None:
            ready.set()

        task = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
        await ready.wait()
        return task

    lifespan_task = await lifespan()
    if canned:  # ours only: the upstream's answers come from memory (bench/inmemory.py)
        from inmemory import backends

        import httpcore

        await app.aclose()
        app._pool = httpcore.AsyncConnectionPool(network_backend=backends(httpcore)[1])
    stop_at = time.monotonic() + 0.5  # warm-up: connections opened, caches filled
    await asyncio.gather(*(client() for _ in range(concurrency)))
    done = 0
    cpu = time.process_time()
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(client() for _ in range(concurrency)))
    cpu = time.process_time() - cpu
    lifespan_task.cancel()
    return done, cpu


def child(args: argparse.Namespace) -> None:
    import uvloop

    app = load_app(args.gateway, args.upstream, Path(args.ours_root))
    requests, cpu = uvloop.run(drive(app, args.scenario, args.seconds, args.canned))
    print(f"{requests} {cpu}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateways", default="ours,aiohttp")
    ap.add_argument("--scenarios", default="get_small")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--ours-root", default=str(BENCH.parent))
    ap.add_argument(
        "--canned",
        action="store_true",
        help="ours only, GET 12 B: the upstream answers from memory (steadiest)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gateway", help=argparse.SUPPRESS)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    import subprocess

    results: dict[tuple[str, str], list[float]] = {}
    with nginx_mod.Nginx(certs_python=sys.executable, cpu=0) as upstream:
        for rnd in range(args.rounds):
            for scenario in args.scenarios.split(","):
                for gateway in args.gateways.split(","):
                    cmd = ["taskset", "-c", "1", sys.executable, __file__, "--child", "--gateway", gateway]
                    cmd += [
                        "--scenario",
                        scenario,
                        "--upstream",
                        upstream.http_url,
                        "--seconds",
                        str(args.seconds),
                    ]
                    cmd += ["--ours-root", args.ours_root] + (["--canned"] if args.canned else [])
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                    if out.returncode:
                        print(out.stderr[-2000:], file=sys.stderr)
                        return 1
                    requests, cpu = out.stdout.split()
                    us = float(cpu) * 1e6 / int(requests)
                    results.setdefault((gateway, scenario), []).append(us)
                    print(
                        f"round {rnd + 1} {scenario:9s} {gateway:8s} {us:8.1f} µs/req ({requests} requests)"
                    )
    for (gateway, scenario), values in results.items():
        median = statistics.median(values)
        print(f"median {scenario:9s} {gateway:8s} {median:8.1f} µs/req  (min {min(values):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
