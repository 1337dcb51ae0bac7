"""Cancellation at each traced step of a proxied connect (asyncio only): the pool keeps
no connection and the next request goes through."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Iterator

import pytest

import httpcore
from httpcore._backends.asyncio_backend import AsyncioStream
from tests.servers import tls
from tests.servers.asgi_server import UvicornServer
from tests.servers.http_proxy import ProxyServer

# (event, which occurrence): TLS starts twice, to the proxy and then to the origin.
STEPS = [
    ("connection.connect_tcp.complete", 0),
    ("connection.start_tls.started", 0),
    ("connection.start_tls.complete", 0),
    ("connection.proxy_connect.started", 0),
    ("connection.proxy_connect.complete", 0),
    ("connection.start_tls.started", 1),
    ("connection.start_tls.complete", 1),
]


@pytest.fixture
def https_proxy() -> Iterator[ProxyServer]:
    proxy = ProxyServer(ssl_context=tls.server_ssl_context()).start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize(("step", "occurrence"), STEPS)
async def test_cancelled_in_a_trace_callback(
    https_proxy: ProxyServer,
    tls_server: UvicornServer,
    step: str,
    occurrence: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    # Every stream TLS gives back, to the proxy and to the origin, must be closed too,
    # not only the TCP stream under it (Python 3.10 warns of the TLS transport).
    tls_streams: list[typing.Any] = []
    start_tls = AsyncioStream.start_tls

    async def recorded(self: AsyncioStream, *args: typing.Any) -> typing.Any:
        stream = await start_tls(self, *args)
        tls_streams.append(stream)
        return stream

    monkeypatch.setattr(AsyncioStream, "start_tls", recorded)

    async def trace(name: str, info: typing.Any) -> None:
        seen.append(name)
        if name == step and seen.count(name) == occurrence + 1:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)

    proxy = httpcore.Proxy(https_proxy.url, ssl_context=tls.client_ssl_context())
    url = f"https://localhost:{tls_server.port}/"
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=tls.client_ssl_context()) as http:
        request = asyncio.ensure_future(http.request("GET", url, extensions={"trace": trace}))
        done = await asyncio.wait_for(asyncio.gather(request, return_exceptions=True), 5.0)
        assert isinstance(done[0], asyncio.CancelledError)
        assert http.connections == []
        assert [getattr(stream, "_closed", True) for stream in tls_streams] == [True] * len(tls_streams)
        r = await http.request("GET", url, timeout=5.0)
        assert r.status_code == 200
