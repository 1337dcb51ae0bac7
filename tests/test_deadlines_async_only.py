"""The connect timeout is one deadline for TCP and TLS together (asyncio).

A slow trace callback stands in for a slow TCP connect: whatever the TCP part took is
no longer available to the TLS handshake, so a server that never answers the
ClientHello costs the connect timeout in all, not the timeout twice.
"""

from __future__ import annotations

import asyncio
import time
import typing

import pytest

import httpcore
from tests.servers.raw import RawConnection, RawServerFactory


def never_reads(conn: RawConnection) -> None:
    conn.sleep(10)


@pytest.mark.parametrize("tcp_part", [0.3, 0.7])
async def test_connect_timeout_is_one_deadline_for_tcp_and_tls(
    raw_server: RawServerFactory, tcp_part: float
) -> None:
    srv = raw_server(never_reads)

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        if name == "connection.connect_tcp.complete":
            await asyncio.sleep(tcp_part)

    timeout = httpcore.Timeout(connect=0.5, read=5.0, write=5.0, pool=5.0)
    async with httpcore.AsyncConnectionPool(timeout=timeout) as pool:
        start = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await pool.request(
                "GET", srv.url.replace("http://", "https://") + "/", extensions={"trace": trace}
            )
        elapsed = time.monotonic() - start
        assert pool.connections == []
    assert elapsed < max(0.5, tcp_part) + 0.4
