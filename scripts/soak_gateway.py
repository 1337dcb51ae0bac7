#!/usr/bin/env python
"""``make soak-gateway``: thousands of requests through the gateway under uvicorn, with
upstream faults and clients that vanish; every body checked, every failure accounted for.

Runs on loopback only: a fault-injecting upstream (an asyncio server in a thread of this
process), ``examples.gateway:app`` under uvicorn in a child process in front of it, a
second gateway in front of a closed port (connection refused), and concurrent clients.
Each request is one of:

======================= ============================================= =================
kind                    the upstream ...                              the client must get
======================= ============================================= =================
download                sends N seeded random bytes (length or chunks) 200, sha256 of the seed's
upload                  hashes the (streamed) body it read            200, its own length and sha256
garbage                 answers with bytes that are not HTTP          502
reset-head              sends half a head, then a TCP reset           502
close                   closes without a word (a GET is retried once) 502
reset-body-small        resets inside a small body (read whole)       502
reset-body-large        resets inside a large body (streamed)         200 then an error: aborted,
                                                                      never a clean short body
stall                   says nothing for longer than the read timeout 504
refused                 (the second gateway's upstream is down)       502
vanish-*                (the client leaves mid-download, mid-upload,   nothing: checked by the
                        or while the upstream thinks)                 leak checks below
======================= ============================================= =================

At the end, after a short quiet period, it checks the gateway process against the
figures taken after the warm-up: open file descriptors and resident memory must not
have grown (beyond a small slack), and the upstream must not hold more connections than
the clients could have kept busy. Bounded by ``--requests`` and ``--seconds``. Exits 1
on any lost request, wrong body, wrong status or growth.

    .venv/bin/python scripts/soak_gateway.py --requests 3000 --max-size 4194304
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpcore  # noqa: E402

HOST = "127.0.0.1"
SMALL = 1000
LARGE = 1024 * 1024
WEIGHTS = {
    "download": 36,
    "upload": 30,
    "garbage": 4,
    "reset-head": 4,
    "close": 4,
    "reset-body-small": 4,
    "reset-body-large": 4,
    "stall": 3,
    "refused": 3,
    "vanish-download": 3,
    "vanish-upload": 3,
    "vanish-waiting": 2,
}
EXPECTED_STATUS = {
    "garbage": 502,
    "reset-head": 502,
    "close": 502,
    "reset-body-small": 502,
    "stall": 504,
    "refused": 502,
}
READ_TIMEOUT = 2.0
STALL = 3.5  # longer than the gateway's read timeout


def seeded(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- the upstream ---------------------------------------------------------------------


class Upstream:
    """A fault-injecting HTTP/1.1 server on a loop of its own, in a daemon thread."""

    def __init__(self) -> None:
        self.open = 0  # connections open now
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Upstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the upstream did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, HOST, 0, limit=1 << 20))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        # Whatever connections are still being served end here, and the loop with them.
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self.open -= 1
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        kind = url.path.rsplit("/", 1)[-1]
        query = {key: int(values[0]) for key, values in parse_qs(url.query).items()}
        digest, length = hashlib.sha256(), 0
        async for chunk in self._body(reader, headers):
            digest.update(chunk)
            length += len(chunk)
        size, seed = query.get("size", 0), query.get("seed", 0)
        if kind == "download":
            await self._download(writer, seed, size)
        elif kind == "upload":
            answer = json.dumps({"length": length, "sha256": digest.hexdigest()}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer)
        elif kind == "garbage":
            writer.write(b"SPAM SPAM SPAM\r\n\r\n")
            await writer.drain()
            return False
        elif kind == "reset-head":
            await self._reset(writer, b"HTTP/1.1 200 OK\r\nContent-Le")
            return False
        elif kind == "close":
            return False
        elif kind.startswith("reset-body"):
            total = SMALL if kind.endswith("small") else LARGE
            part = seeded(seed, total)[: total // 5]
            await self._reset(writer, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total + part)
            return False
        elif kind == "stall":
            await asyncio.sleep(STALL)
            return False
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        return True

    async def _body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    return
                yield await reader.readexactly(size)
                await reader.readexactly(2)
        left = int(headers.get("content-length", "0"))
        while left:
            chunk = await reader.read(min(left, 65536))
            if not chunk:
                raise ConnectionError("EOF in the request body")
            left -= len(chunk)
            yield chunk

    async def _download(self, writer: asyncio.StreamWriter, seed: int, size: int) -> None:
        data = seeded(seed, size)
        chunked = seed % 2 == 1
        framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % size
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n" + framing + b"\r\n\r\n")
        for offset in range(0, size, 65536):
            piece = data[offset : offset + 65536]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")

    async def _reset(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.05)  # let the bytes reach the gateway before the reset
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


# -- the gateways under uvicorn --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Gateway:
    """``uvicorn examples.gateway:app`` in a child process."""

    def __init__(
        self, upstream: str, python: str, max_connections: int = 64, read_timeout: float = READ_TIMEOUT
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "GATEWAY_UPSTREAM": upstream,
            "GATEWAY_READ_TIMEOUT": str(read_timeout),
            "GATEWAY_CONNECT_TIMEOUT": "2",
            "GATEWAY_MAX_CONNECTIONS": str(max_connections),
        }
        command = [python, "-m", "uvicorn", "examples.gateway:app", "--host", HOST, "--port", str(self.port)]
        command += ["--log-level", "critical", "--no-access-log"]
        # Its log (a warning per upstream failure) would drown the report: failures show in the tally.
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited with status {self.process.returncode}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.05)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory now (or its peak, ``VmHWM``), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the clients -----------------------------------------------------------------------


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def fail(self, kind: str, what: str) -> None:
        self.outcomes[f"{kind}: FAILED"] += 1
        if len(self.failures) < 50:
            self.failures.append(f"{kind}: {what}")


async def upload_chunks(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    offset = 0
    while offset < len(data):
        step = rng.randint(1, 256 * 1024)
        yield data[offset : offset + step]
        offset += step


async def one(
    http: httpcore.AsyncConnectionPool,
    gateway: str,
    refused: str,
    kind: str,
    n: int,
    max_size: int,
    tally: Tally,
) -> None:
    rng = random.Random(n)
    size = rng.choice([0, rng.randint(1, 1024), rng.randint(1, 128 * 1024), rng.randint(1, max_size)])
    if kind.startswith("vanish"):
        await vanish(gateway, kind, n, max(size, LARGE))
        tally.outcomes[kind] += 1
        return
    base = refused if kind == "refused" else gateway
    url = f"{base}/soak/{kind}?size={size}&seed={n}"
    try:
        if kind == "upload":
            data = seeded(n, size)
            body = upload_chunks(data, rng) if n % 2 else data
            response = await http.request("POST", url, body=body)
            seen = json.loads(response.body)
            ok = seen == {"length": size, "sha256": hashlib.sha256(data).hexdigest()}
            if response.status_code != 200 or not ok:
                tally.fail(kind, f"status {response.status_code}, upstream saw {seen}")
                return
        elif kind in ("download", "reset-body-large"):
            digest, received = hashlib.sha256(), 0
            async with http.stream("GET", url) as response:
                async for chunk in response.stream():
                    digest.update(chunk)
                    received += len(chunk)
            if kind == "reset-body-large":
                tally.fail(kind, f"a clean {response.status_code} with {received} bytes: silently truncated")
                return
            if response.status_code != 200 or digest.digest() != hashlib.sha256(seeded(n, size)).digest():
                tally.fail(
                    kind, f"status {response.status_code}, {received} of {size} bytes, sha256 mismatch"
                )
                return
        else:
            response = await http.request("GET", url)
            if response.status_code != EXPECTED_STATUS[kind]:
                tally.fail(kind, f"status {response.status_code}, expected {EXPECTED_STATUS[kind]}")
                return
    except httpcore.HTTPCoreError as exc:
        if kind == "reset-body-large" and isinstance(exc, httpcore.RemoteProtocolError | httpcore.ReadError):
            tally.outcomes[f"{kind}: aborted"] += 1
            return
        tally.fail(kind, f"{type(exc).__name__}: {exc}")
        return
    tally.outcomes[f"{kind}: {response.status_code}"] += 1


async def vanish(gateway: str, kind: str, n: int, size: int) -> None:
    """A client that leaves mid-download, mid-upload or while the upstream thinks."""
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        if kind == "vanish-download":
            writer.write(f"GET /soak/download?size={size}&seed={n} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            await asyncio.wait_for(reader.read(65536), 5)
        elif kind == "vanish-upload":
            writer.write(
                f"POST /soak/upload HTTP/1.1\r\nHost: soak\r\nContent-Length: {size}\r\n\r\n".encode()
            )
            writer.write(seeded(n, size // 4))
            await writer.drain()
        else:
            writer.write(b"GET /soak/stall HTTP/1.1\r\nHost: soak\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.3)
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.transport.abort()


async def run_clients(
    gateway: str,
    refused: str,
    count: int,
    start: int,
    concurrency: int,
    max_size: int,
    deadline: float,
    tally: Tally,
) -> int:
    """``count`` requests from ``concurrency`` clients; returns how many were sent."""
    kinds = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    sent = 0

    async with httpcore.AsyncConnectionPool(max_connections=concurrency, timeout=30.0) as http:

        async def worker() -> None:
            nonlocal sent
            while sent < count and time.monotonic() < deadline:
                n = start + sent
                sent += 1
                kind = random.Random(n * 7919).choices(kinds, weights)[0]
                await one(http, gateway, refused, kind, n, max_size, tally)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


def soak(requests: int, seconds: float, concurrency: int, max_size: int, python: str) -> Tally:
    """The whole soak; the returned tally's ``failures`` is empty when it passed."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    with Upstream() as upstream:
        gateway = Gateway(f"http://{HOST}:{upstream.port}", python)
        refused = Gateway(f"http://{HOST}:{free_port()}", python, max_connections=4)
        try:
            warmup = max(concurrency, requests // 10)
            done = asyncio.run(
                run_clients(gateway.url, refused.url, warmup, 0, concurrency, max_size, deadline, tally)
            )
            time.sleep(READ_TIMEOUT + 0.5)
            fds, rss = gateway.fds(), gateway.rss_mib()
            done += asyncio.run(
                run_clients(
                    gateway.url,
                    refused.url,
                    requests - warmup,
                    warmup,
                    concurrency,
                    max_size,
                    deadline,
                    tally,
                )
            )
            time.sleep(READ_TIMEOUT + 0.5)  # vanished clients' exchanges end
            fds_end, rss_end = gateway.fds(), gateway.rss_mib()
            tally.outcomes["requests"] = done
            print(
                f"gateway: {fds} -> {fds_end} open fds, {rss:.1f} -> {rss_end:.1f} MiB resident after warm-up"
            )
            print(f"upstream: {upstream.open} connections open at the end")
            # Idle keep-alive connections may differ by what the last clients used.
            if fds_end > fds + concurrency + 8:
                tally.failures.append(f"the gateway's open fds grew from {fds} to {fds_end}")
            if rss_end > rss + max(32.0, 4 * max_size / 2**20):
                tally.failures.append(f"the gateway's memory grew from {rss:.1f} to {rss_end:.1f} MiB")
            if upstream.open > 2 * concurrency + 8:
                tally.failures.append(f"{upstream.open} upstream connections still open")
            if done < requests:
                tally.failures.append(f"only {done} of {requests} requests were sent within {seconds} s")
        finally:
            gateway.stop()
            refused.stop()
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=240.0, help="time cap for the whole soak")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-size", type=int, default=4 * 1024 * 1024, help="largest body, either way")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs uvicorn and the gateway")
    args = ap.parse_args(argv)
    started = time.monotonic()
    tally = soak(args.requests, args.seconds, args.concurrency, args.max_size, args.python)
    for outcome, count in sorted(tally.outcomes.items()):
        print(f"  {outcome:28s} {count}")
    for failure in tally.failures:
        print(f"FAILED: {failure}")
    verdict = "FAILED" if tally.failures else "passed"
    print(f"soak {verdict}: {tally.outcomes['requests']} requests in {time.monotonic() - started:.1f} s")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
