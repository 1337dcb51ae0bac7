"""HTTP/1.1 faults that only exist in async code: a request cancelled part-way."""

from __future__ import annotations

import asyncio

import pytest

import httpcore
from tests.servers.raw import RawConnection, RawServerFactory, good_or, ok


def late(conn: RawConnection, request: bytes) -> bool:
    """Half a response now, the rest after the client gave up."""
    data = ok(b"too late for the cancelled request")
    conn.send(data[:20])
    conn.sleep(0.3)
    conn.send(data[20:])
    return True


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_cancelled_request_leaves_the_pool_clean(raw_server: RawServerFactory, stream: bool) -> None:
    srv = raw_server(good_or(late))
    async with httpcore.AsyncConnectionPool(timeout=5.0) as pool:

        async def fetch() -> bytes:
            if not stream:
                return (await pool.request("GET", srv.url + "/late")).body
            async with pool.stream("GET", srv.url + "/late") as r:
                return b"".join([chunk async for chunk in r.stream()])

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fetch(), 0.1)
        assert pool.connections == []
        await asyncio.sleep(0.4)  # the rest of the late response has arrived by now
        r = await pool.request("GET", srv.url + "/good/next")
        assert r.body == b"good:next"
        assert len(pool.connections) == 1
    assert srv.connections_accepted == 2


async def test_cancelled_while_reading_the_body(raw_server: RawServerFactory) -> None:
    def slow_body(conn: RawConnection, request: bytes) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
        conn.sleep(0.3)
        conn.send(b"world")
        return True

    srv = raw_server(good_or(slow_body))
    async with httpcore.AsyncConnectionPool(timeout=5.0) as pool:
        async with pool.stream("GET", srv.url + "/slow") as r:
            chunks = r.stream()
            assert await chunks.__anext__() == b"hello"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(chunks.__anext__(), 0.1)
        assert pool.connections == []
        r = await pool.request("GET", srv.url + "/good/next")
        assert r.body == b"good:next"
    assert srv.connections_accepted == 2
