"""Pool behaviour that needs concurrency or cancellation in asyncio."""

from __future__ import annotations

import asyncio
import gc

import pytest

import httpcore
from tests.servers.asgi_server import UvicornServer


async def test_max_connections_holds_under_concurrency(server: UvicornServer) -> None:
    peak = 0
    async with httpcore.AsyncConnectionPool(max_connections=3) as http:

        async def one() -> None:
            nonlocal peak
            async with http.stream("GET", server.url + "/slow_headers?delay=0.05") as r:
                peak = max(peak, len(http.connections))
                await r.aread()

        await asyncio.gather(*[one() for _ in range(10)])
        assert peak <= 3
        assert len(http.connections) <= 3


async def test_100_tasks_over_10_connections(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=10) as http:
        responses = await asyncio.gather(*[http.request("GET", server.url + "/") for _ in range(100)])
        assert all(r.body == b"Hello, world!" for r in responses)
        assert len(http.connections) <= 10


async def test_waiters_are_served_first_in_first_out(server: UvicornServer) -> None:
    order: list[int] = []
    async with httpcore.AsyncConnectionPool(max_connections=1) as http:
        first = await http.request("GET", server.url + "/", stream=True)

        async def waiter(i: int) -> None:
            await http.request("GET", server.url + "/")
            order.append(i)

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0.01)
        await first.aclose()
        await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_mixed_origins_share_the_limit(server: UvicornServer, tls_server: UvicornServer) -> None:
    from tests.servers.tls import client_ssl_context

    async with httpcore.AsyncConnectionPool(max_connections=2, ssl_context=client_ssl_context()) as http:
        urls = [server.url + "/", tls_server.url + "/"] * 20
        responses = await asyncio.gather(*[http.request("GET", url) for url in urls])
        assert all(r.status_code == 200 for r in responses)
        assert len(http.connections) <= 2


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.1])
async def test_cancellation_mid_request_leaves_pool_consistent(server: UvicornServer, delay: float) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=2) as http:
        tasks = [
            asyncio.create_task(http.request("GET", server.url + "/slow_body?delay=0.3")) for _ in range(6)
        ]
        await asyncio.sleep(delay)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert all(count == 0 for count in http._load.values())
        assert not http._waiters
        responses = await asyncio.gather(*[http.request("GET", server.url + "/") for _ in range(4)])
        assert all(r.body == b"Hello, world!" for r in responses)
        assert len(http.connections) <= 2


async def test_cancelled_stream_read_closes_connection(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        response = await http.request("GET", server.url + "/slow_body?delay=1", stream=True)

        async def read() -> None:
            async for _ in response.stream():
                pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert http.connections == []
        assert (await http.request("GET", server.url + "/")).status_code == 200


async def test_pool_timeout_with_timeouts_racing_grants(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(
        max_connections=1, timeout=httpcore.Timeout(5.0, pool=0.05)
    ) as http:
        results = await asyncio.gather(
            *[http.request("GET", server.url + "/slow_headers?delay=0.1") for _ in range(5)],
            return_exceptions=True,
        )
        assert any(isinstance(r, httpcore.Response) for r in results)
        assert all(isinstance(r, httpcore.Response | httpcore.PoolTimeout) for r in results)
        assert not http._waiters
        assert (await http.request("GET", server.url + "/", timeout=5.0)).status_code == 200


async def test_close_wakes_waiters(server: UvicornServer) -> None:
    http = httpcore.AsyncConnectionPool(max_connections=1)
    first = await http.request("GET", server.url + "/", stream=True)
    waiter = asyncio.create_task(http.request("GET", server.url + "/"))
    await asyncio.sleep(0.05)
    await http.aclose()
    with pytest.raises(httpcore.PoolClosed):
        await waiter
    await first.aclose()


async def test_unclosed_response_finalised_by_gc(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=1) as http:
        response = await http.request("GET", server.url + "/stream?size=1000000", stream=True)
        del response
        gc.collect()
        r = await http.request("GET", server.url + "/", timeout=2.0)
        assert r.status_code == 200
        assert len(http.connections) == 1


async def test_sync_iterable_body_in_async_code(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("POST", server.url + "/echo_body", body=iter([b"a", b"b"]))
        assert r.body == b"ab"


async def test_cancelled_while_closing_a_stale_connection(server: UvicornServer) -> None:
    """Cancelled while the pool closes an expired idle connection at checkout: the
    connection it had already taken for the request is given back, not leaked."""
    from httpcore._async.connection import AsyncHTTPConnection

    closing = asyncio.Event()

    class SlowToClose(AsyncHTTPConnection):
        async def aclose(self) -> None:
            closing.set()
            try:
                await asyncio.sleep(5)
            finally:
                await super().aclose()

    def factory(origin: httpcore.Origin) -> AsyncHTTPConnection:
        return SlowToClose(origin, keepalive_expiry=0.01)

    async with httpcore.AsyncConnectionPool(connection_factory=factory) as http:
        await http.request("GET", server.url + "/")
        await asyncio.sleep(0.05)  # the idle connection expires
        task = asyncio.create_task(http.request("GET", server.url + "/"))
        await asyncio.wait_for(closing.wait(), 2.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(http.connections) == 1  # the new one, carrying nothing
        assert all(count == 0 for count in http._load.values())
        closing.clear()
        response = await asyncio.wait_for(http.request("GET", server.url + "/"), 2.0)
        assert response.status_code == 200
