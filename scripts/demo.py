#!/usr/bin/env python
"""``make demo``: httpcore end to end, through the ASGI gateway, all on loopback.

Starts two uvicorn processes, an upstream serving ``tests/servers/app.py`` and
``examples/gateway.py`` in front of it, then talks to the gateway with the sync
``ConnectionPool`` and the async ``AsyncConnectionPool``: a GET, a streamed upload and a
streamed download, each checked byte for byte (length and sha256). Last, it stops the
upstream and shows the gateway answering 502. The servers are stopped on the way out,
whatever happened; the exit status is non-zero if any check failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.servers.app, which the upstream serves

import httpcore  # noqa: E402
from tests.servers.app import pattern  # noqa: E402

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
UPLOAD_CHUNK = 64 * 1024
UPLOAD_SIZE = 4 * 1024 * 1024
DOWNLOAD_SIZE = 16 * 1024 * 1024

UPLOAD = os.urandom(UPLOAD_SIZE)
UPLOAD_SHA256 = hashlib.sha256(UPLOAD).hexdigest()
DOWNLOAD_SHA256 = hashlib.sha256(pattern(DOWNLOAD_SIZE)).hexdigest()

failures: list[str] = []
checks = 0


def check(ok: bool, what: str) -> None:
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print(f"    FAILED: {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_uvicorn(app: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``python -m uvicorn app`` on HOST:port; returns once it accepts connections."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited with status {process.returncode} before serving")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return process
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(f"{app} did not accept connections within {START_TIMEOUT} s") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (a graceful shutdown, lifespan included), then SIGKILL after 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def header(response: httpcore.Response, name: bytes) -> str:
    values = [v.decode("latin-1") for k, v in response.headers if k.lower() == name]
    return ", ".join(values) or "-"


def rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:7.1f} MB/s"


def report_get(response: httpcore.Response) -> None:
    print(
        f"  GET /            {response.status_code} {response.http_version.decode()}"
        f"  content-type: {header(response, b'content-type')}  body: {response.body!r}"
    )
    check(response.status_code == 200 and response.body == b"Hello, world!", "GET / says Hello, world!")


def report_upload(response: httpcore.Response, seconds: float) -> None:
    seen = json.loads(response.body)
    sent = f"sent {UPLOAD_SIZE} bytes in {UPLOAD_SIZE // UPLOAD_CHUNK} chunks"
    print(
        f"  POST /upload     {response.status_code}  {sent}; upstream saw {seen['length']} bytes"
        f" in {seen['chunks']} messages, sha256 {seen['sha256'][:16]}...  {rate(UPLOAD_SIZE, seconds)}"
    )
    check(response.status_code == 200, "upload answered 200")
    check(seen["length"] == UPLOAD_SIZE and seen["sha256"] == UPLOAD_SHA256, "upstream saw the upload intact")


def report_download(response: httpcore.Response, size: int, chunks: int, digest: str, seconds: float) -> None:
    framing = f"transfer-encoding: {header(response, b'transfer-encoding')}"
    print(
        f"  GET /stream      {response.status_code}  {framing}  {size} bytes in {chunks} chunks,"
        f" sha256 {digest[:16]}...  {rate(size, seconds)}"
    )
    check(response.status_code == 200, "download answered 200")
    check(size == DOWNLOAD_SIZE and digest == DOWNLOAD_SHA256, "download arrived intact")


def report_reuse(pool: object, responses: list[httpcore.Response]) -> None:
    connections = len({id(response.extensions["network_stream"]) for response in responses})
    print(f"  {pool!r}: {len(responses)} requests over {connections} connection(s)")
    check(connections == 1, "one keep-alive connection carried every request")


def upload_chunks() -> Iterator[bytes]:
    for offset in range(0, UPLOAD_SIZE, UPLOAD_CHUNK):
        yield UPLOAD[offset : offset + UPLOAD_CHUNK]


async def async_upload_chunks() -> AsyncIterator[bytes]:
    for chunk in upload_chunks():
        yield chunk


def demo_sync(gateway: str) -> None:
    print("httpcore.ConnectionPool (sync)")
    with httpcore.ConnectionPool() as http:
        responses = [http.request("GET", gateway + "/")]
        report_get(responses[-1])

        started = time.perf_counter()
        responses.append(http.request("POST", gateway + "/upload", body=upload_chunks()))
        report_upload(responses[-1], time.perf_counter() - started)

        started = time.perf_counter()
        with http.stream("GET", f"{gateway}/stream?size={DOWNLOAD_SIZE}") as response:
            digest, size, chunks = hashlib.sha256(), 0, 0
            for chunk in response.stream():
                digest.update(chunk)
                size += len(chunk)
                chunks += 1
        report_download(response, size, chunks, digest.hexdigest(), time.perf_counter() - started)
        report_reuse(http, [*responses, response])


async def demo_async(gateway: str) -> None:
    print("httpcore.AsyncConnectionPool (async)")
    async with httpcore.AsyncConnectionPool() as http:
        responses = [await http.request("GET", gateway + "/")]
        report_get(responses[-1])

        started = time.perf_counter()
        responses.append(await http.request("POST", gateway + "/upload", body=async_upload_chunks()))
        report_upload(responses[-1], time.perf_counter() - started)

        started = time.perf_counter()
        response = await http.request("GET", f"{gateway}/stream?size={DOWNLOAD_SIZE}", stream=True)
        try:
            digest, size, chunks = hashlib.sha256(), 0, 0
            async for chunk in response.stream():
                digest.update(chunk)
                size += len(chunk)
                chunks += 1
        finally:
            await response.aclose()
        report_download(response, size, chunks, digest.hexdigest(), time.perf_counter() - started)
        report_reuse(http, [*responses, response])


def demo_upstream_down(gateway: str) -> None:
    print("the upstream is stopped")
    response = httpcore.request("GET", gateway + "/")
    print(f"  GET /            {response.status_code}  body: {response.body.decode().strip()!r}")
    check(response.status_code == 502, "the gateway answers 502 when the upstream is down")


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # keep order with the servers' logs
    began = time.perf_counter()
    upstream_port, gateway_port = free_port(), free_port()
    upstream_url = f"http://{HOST}:{upstream_port}"
    gateway = f"http://{HOST}:{gateway_port}"
    print(f"httpcore {httpcore.__version__} on Python {platform.python_version()}")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upstream = start_uvicorn("tests.servers.app:app", upstream_port)
        processes.append(upstream)
        print(f"upstream  {upstream_url}  (uvicorn tests.servers.app:app, pid {upstream.pid})")
        gateway_process = start_uvicorn(
            "examples.gateway:app", gateway_port, {"GATEWAY_UPSTREAM": upstream_url}
        )
        processes.append(gateway_process)
        print(
            f"gateway   {gateway}  (GATEWAY_UPSTREAM={upstream_url}"
            f" uvicorn examples.gateway:app, pid {gateway_process.pid})\n"
        )

        demo_sync(gateway)
        asyncio.run(demo_async(gateway))
        stop(upstream)
        demo_upstream_down(gateway)
        status = stop(gateway_process)
        print(f"  gateway stopped by SIGTERM, exit status {status}")
        # uvicorn re-raises the signal after its graceful shutdown (lifespan included).
        check(status in (0, -signal.SIGTERM), "the gateway shut down cleanly")
    except Exception as exc:  # noqa: BLE001 - reported, then the exit status says it failed
        failures.append(f"{type(exc).__name__}: {exc}")
        print(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        for process in processes:
            stop(process)

    elapsed = time.perf_counter() - began
    if failures:
        print(f"\n{len(failures)} check(s) FAILED in {elapsed:.1f} s: " + "; ".join(failures))
        return 1
    print(f"\nall {checks} checks passed in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
