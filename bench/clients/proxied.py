"""Benchmark adapter for the proxied scenarios (bench/proxy.py): one client, one scenario.

    python clients/proxied.py CLIENT SCENARIO --proxy URL --url URL --ca CA.pem --count N --seconds S

CLIENT: ours | httpcore-1.0.9 | requests | urllib3 (ours runs under the project's
interpreter, the peers under bench/.venv-peers). SCENARIO: forward_sync (GET of an
http:// URL, forwarded by the proxy), tunnel_sync (GET of an https:// URL through a
CONNECT tunnel, kept alive), and for the async-capable clients forward_async and
tunnel_async. One pool or session per run, sequential requests, every response's status
and body length checked; an untimed warm-up, then CPU time of the process
(getrusage(RUSAGE_SELF)) over the timed requests. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import sys
import time
import typing

HELLO_LEN = 12


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_sync(client: str, proxy: str, ca: str) -> tuple[typing.Callable[[str], tuple[int, int]], typing.Callable[[], None]]:
    """A ``get(url) -> (status, body length)`` and a ``close()`` for this client."""
    if client == "ours":
        import httpcore

        http = httpcore.ConnectionPool(proxy=httpcore.Proxy(proxy), ssl_context=ssl.create_default_context(cafile=ca))

        def get(url: str) -> tuple[int, int]:
            r = http.request("GET", url)
            return r.status_code, len(r.body)

        return get, http.close
    if client == "httpcore-1.0.9":
        import httpcore

        pool = httpcore.HTTPProxy(proxy_url=proxy, ssl_context=ssl.create_default_context(cafile=ca))

        def get_encode(url: str) -> tuple[int, int]:
            r = pool.request("GET", url)
            return r.status, len(r.content)

        return get_encode, pool.close
    if client == "requests":
        import requests

        session = requests.Session()
        session.trust_env = False
        session.proxies = {"http": proxy, "https": proxy}
        session.verify = ca

        def get_requests(url: str) -> tuple[int, int]:
            r = session.get(url)
            return r.status_code, len(r.content)

        return get_requests, session.close
    if client == "urllib3":
        import urllib3

        manager = urllib3.ProxyManager(proxy, ca_certs=ca)

        def get_urllib3(url: str) -> tuple[int, int]:
            r = manager.request("GET", url)
            return r.status, len(r.data)

        return get_urllib3, manager.clear
    raise SystemExit(f"unknown client {client}")


async def run_async(client: str, proxy: str, ca: str, url: str, count: int, seconds: float) -> dict[str, typing.Any]:
    import httpcore

    context = ssl.create_default_context(cafile=ca)
    if client == "ours":
        http: typing.Any = httpcore.AsyncConnectionPool(proxy=httpcore.Proxy(proxy), ssl_context=context)

        async def get(url: str) -> tuple[int, int]:
            r = await http.request("GET", url)
            return r.status_code, len(r.body)
    elif client == "httpcore-1.0.9":
        http = httpcore.AsyncHTTPProxy(proxy_url=proxy, ssl_context=context)

        async def get(url: str) -> tuple[int, int]:
            r = await http.request("GET", url)
            return r.status, len(r.content)
    else:
        raise SystemExit(f"{client} has no async mode")
    try:
        for _ in range(max(count // 10, 1)):
            check(await get(url))
        start_wall, start_cpu, done = time.perf_counter(), cpu(), 0
        while done < count and time.perf_counter() - start_wall < seconds:
            check(await get(url))
            done += 1
        return measured(done, start_wall, start_cpu)
    finally:
        await http.aclose()


def check(result: tuple[int, int]) -> None:
    if result != (200, HELLO_LEN):
        raise RuntimeError(f"unexpected response: status {result[0]}, {result[1]} body bytes")


def measured(done: int, start_wall: float, start_cpu: float) -> dict[str, typing.Any]:
    wall, used = time.perf_counter() - start_wall, cpu() - start_cpu
    return {"ok": True, "requests": done, "wall_s": wall, "cpu_us_per_req": used / done * 1e6, "rps": done / wall}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("client")
    parser.add_argument("scenario")
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    try:
        if args.scenario.endswith("_async"):
            result = asyncio.run(run_async(args.client, args.proxy, args.ca, args.url, args.count, args.seconds))
        else:
            get, close = make_sync(args.client, args.proxy, args.ca)
            try:
                for _ in range(max(args.count // 10, 1)):
                    check(get(args.url))
                start_wall, start_cpu, done = time.perf_counter(), cpu(), 0
                while done < args.count and time.perf_counter() - start_wall < args.seconds:
                    check(get(args.url))
                    done += 1
                result = measured(done, start_wall, start_cpu)
            finally:
                close()
    except Exception as exc:  # one JSON line whatever happens; the orchestrator reports it
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
