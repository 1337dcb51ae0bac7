"""SOCKS5 under asyncio cancellation: a request cancelled mid-handshake leaves the pool empty and usable."""

from __future__ import annotations

import asyncio

import pytest

import httpcore
from tests.servers.raw import RawServerFactory
from tests.servers.socks import STALL_STEPS, SOCKSScript


@pytest.mark.parametrize("step", [step for step in STALL_STEPS if step != "auth"])
async def test_cancelled_mid_handshake(raw_server: RawServerFactory, step: str) -> None:
    script = SOCKSScript(stall=step)  # type: ignore[arg-type]
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(proxy=f"socks5h://127.0.0.1:{srv.port}") as http:
        task = asyncio.create_task(http.request("GET", "http://origin.example/", timeout=10.0))
        assert await asyncio.to_thread(srv.wait_for_connections, 1)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert http.connections == []
        # The pool still works afterwards: the next request gets a connection of its own.
        script.stall = None
        script.reply_code = 0x02
        with pytest.raises(httpcore.ProxyError, match="not allowed by ruleset"):
            await http.request("GET", "http://origin.example/", timeout=10.0)
        assert http.connections == []
