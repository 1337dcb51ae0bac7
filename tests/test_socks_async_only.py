"""SOCKS5 under asyncio cancellation: a request cancelled mid-handshake, or inside a trace
callback of the handshake, leaves no socket open and the pool empty and usable."""

from __future__ import annotations

import asyncio
import typing

import pytest

import httpcore
from httpcore import _trace
from tests.servers.asgi_server import UvicornServer
from tests.servers.raw import RawServerFactory
from tests.servers.socks import STALL_STEPS, SOCKSScript
from tests.test_cancellation_async_only import TrackingBackend, assert_consistent


@pytest.mark.parametrize("step", [step for step in STALL_STEPS if step != "auth"])
async def test_cancelled_mid_handshake(raw_server: RawServerFactory, step: str) -> None:
    script = SOCKSScript(stall=step)  # type: ignore[arg-type]
    srv = raw_server(script)
    backend = TrackingBackend()
    proxy = f"socks5h://127.0.0.1:{srv.port}"
    async with httpcore.AsyncConnectionPool(proxy=proxy, network_backend=backend) as http:
        task = asyncio.create_task(http.request("GET", "http://origin.example/", timeout=10.0))
        assert await asyncio.to_thread(srv.wait_for_connections, 1)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert http.connections == []
        await assert_consistent(http, backend)
        # The pool still works afterwards: the next request gets a connection of its own.
        script.stall = None
        script.reply_code = 0x02
        with pytest.raises(httpcore.ProxyError, match="not allowed by ruleset"):
            await http.request("GET", "http://origin.example/", timeout=10.0)
        assert http.connections == []
    assert await backend.at_most_open(0)


@pytest.mark.parametrize(
    "event", [_trace.SETUP_SOCKS5_CONNECTION + suffix for suffix in (_trace.STARTED, _trace.COMPLETE)]
)
async def test_cancel_inside_trace_callback(
    raw_server: RawServerFactory, server: UvicornServer, event: str
) -> None:
    seen: list[str] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        seen.append(name)
        if name == event:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)

    srv = raw_server(SOCKSScript())
    backend = TrackingBackend()
    proxy = f"socks5h://127.0.0.1:{srv.port}"
    async with httpcore.AsyncConnectionPool(proxy=proxy, network_backend=backend) as http:
        with pytest.raises(asyncio.CancelledError):
            await http.request("GET", server.url + "/", extensions={"trace": trace})
        assert event in seen
        await assert_consistent(http, backend)
        r = await http.request("GET", server.url + "/", timeout=5.0)
        assert r.body == b"Hello, world!"
    assert await backend.at_most_open(0)
