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


def stale_after_one(conn: RawConnection, request: bytes) -> bool:
    """Answer one request; read the next and close without answering (a keep-alive
    connection the server closed just as the client reused it)."""
    conn.send(ok(b"first"))
    if conn.read_request() is not None:
        conn.sleep(0.2)
        conn.close()
    return False


async def test_stale_retry_gets_a_fresh_connection_under_contention(raw_server: RawServerFactory) -> None:
    srv = raw_server(good_or(stale_after_one))
    async with httpcore.AsyncConnectionPool(timeout=5.0, max_connections=1) as pool:
        assert (await pool.request("GET", srv.url + "/a")).body == b"first"  # connection 0, now idle
        # A reuses connection 0, which the server closes; B waits for the only slot, gets it
        # (connection 1) when A's stale connection is dropped, and A's retry waits for B.
        a = asyncio.create_task(pool.request("GET", srv.url + "/a"))
        await asyncio.sleep(0.05)
        b = asyncio.create_task(pool.request("GET", srv.url + "/b"))
        assert (await b).body == b"first"
        # Connection 1 is closed by the server in turn once reused: A's one retry must
        # therefore run on a new connection, not on the one B just released.
        assert (await a).body == b"first"
    assert srv.connections_accepted == 3
