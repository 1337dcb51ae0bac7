"""Connections through a SOCKS5 proxy: ``socks5://`` (we resolve names) and ``socks5h://``
(the proxy does).

Theory of operation: ``AsyncSOCKSConnection`` is a proxy connection (TCP to the proxy,
with the pool's retries, local address, socket options or Unix socket) whose
``_establish`` runs the sans-I/O handshake of ``httpcore._socks`` over that stream. Each
read and write gets what is left of the connect deadline, so a proxy that says nothing,
or stops half-way through an answer, ends in ConnectTimeout when the connect timeout
runs out. TLS to an https:// origin (SNI, hostname check and ALPN for the origin), the
choice of HTTP/1.1 or HTTP/2 and everything after are the plain connection's.

With socks5:// the origin's name is resolved here, under the same deadline, once the
proxy has answered our greeting (and any authentication), and the proxy is sent an IP
address; with socks5h:// it is sent the name. When the name has
several addresses and the proxy reports one unreachable or refused, the next is tried on
a new connection to the proxy (a proxy closes after a refusal), still by the same
deadline. Credentials go to the proxy in the RFC 1929 exchange and nowhere else: trace
events, reprs and errors name the proxy and the origin only.
"""

from __future__ import annotations

import ipaddress
import typing

from .. import _trace
from .._backends.base import AsyncNetworkStream
from .._config import time_left
from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from .._models import Origin, Request
from .._proxy import Proxy
from .._socks import SOCKS5Handshake, SOCKSReplyError
from .http_proxy import AsyncProxyConnection
from .tracing import traced

__all__ = ["AsyncSOCKSConnection", "socks5_connect"]

READ_SIZE = 4096  # a SOCKS5 answer is at most 262 bytes


class AsyncSOCKSConnection(AsyncProxyConnection):
    """A connection to one origin through a SOCKS5 proxy, TLS to the origin over it."""

    def __init__(self, origin: Origin, *, proxy: Proxy, **options: typing.Any) -> None:
        super().__init__(origin, proxy=proxy, **options)
        self._remote_dns = proxy.scheme == b"socks5h"

    async def _establish(
        self, stream: AsyncNetworkStream, request: Request, deadline: float | None
    ) -> AsyncNetworkStream:
        trace = request.extensions.get("trace")
        if trace is None:
            return await self._socks_connect(stream, deadline, None)
        origin = self.origin
        info = {"host": origin.host.decode("ascii"), "port": origin.port, "remote_dns": self._remote_dns}
        step = _trace.SETUP_SOCKS5_CONNECTION
        result: AsyncNetworkStream = await traced(
            trace, step, info, self._socks_connect, stream, deadline, trace, opens=True
        )
        return result

    async def _socks_connect(
        self, stream: AsyncNetworkStream, deadline: float | None, trace: typing.Any
    ) -> AsyncNetworkStream:
        """The handshake for our origin over ``stream``, or over a new connection to the
        proxy for each further address of the origin's name (see the module's docstring)."""
        origin = self.origin
        host = origin.host.decode("ascii")
        port, auth = origin.port, self._proxy.auth
        current = stream
        try:
            addresses = []
            if self._remote_dns or _is_ip_address(host):
                addresses = [host]
            else:
                # Resolved once the proxy has greeted us back, as PySocks does: a proxy
                # that never answers still sees our greeting, and no name is looked up.
                resolved: list[str] = []

                async def resolve() -> str:
                    found = await self._backend.resolve(host, port, time_left(deadline))
                    if not found:  # pragma: no cover - getaddrinfo() raises rather than find nothing
                        raise ConnectError(f"No address found for {host}")
                    resolved.extend(found)
                    return found[0]

                try:
                    await socks5_connect(current, host, port, auth, deadline, resolve)
                except SOCKSReplyError as exc:
                    if not exc.address_failed or len(resolved) < 2:
                        raise
                    await current.aclose()
                    current, _ = await self._open_stream(time_left(deadline), trace)
                    addresses = resolved[1:]
            if addresses:
                *others, last = addresses
                for address in others:
                    try:
                        await socks5_connect(current, address, port, auth, deadline)
                    except SOCKSReplyError as exc:  # noqa: PERF203 - once per address tried
                        if not exc.address_failed:
                            raise
                        await current.aclose()
                        current, _ = await self._open_stream(time_left(deadline), trace)
                    else:
                        break
                else:
                    await socks5_connect(current, last, port, auth, deadline)
        except BaseException:
            if current is not stream:
                await current.aclose()  # the caller closes the first one
            raise
        return current


async def socks5_connect(
    stream: AsyncNetworkStream,
    host: str,
    port: int,
    auth: tuple[bytes, bytes] | None,
    deadline: float | None,
    resolve: typing.Any = None,  # () -> str, a coroutine function in async code
) -> SOCKS5Handshake:
    """Ask the SOCKS5 proxy at the other end of ``stream`` for a connection to
    ``host``:``port``, all by ``deadline``; on return the stream leads there. With
    ``resolve``, the address asked for is what it returns, called only when the CONNECT
    request is due (after the greeting and any authentication)."""
    handshake = SOCKS5Handshake(host, port, auth)
    try:
        await stream.write(handshake.start(), time_left(deadline))
        while not handshake.done:
            data = await stream.read(READ_SIZE, time_left(deadline))
            if not data:
                raise handshake.closed_error()
            answer = handshake.receive(data)
            if answer and resolve is not None and handshake.requesting:
                answer = handshake.retarget(await resolve())
                resolve = None
            if answer:
                await stream.write(answer, time_left(deadline))
    except (ReadTimeout, WriteTimeout):
        raise ConnectTimeout("Timed out waiting for the SOCKS proxy to complete its handshake") from None
    except (ReadError, WriteError) as exc:
        raise ConnectError(f"The connection to the SOCKS proxy failed during the handshake: {exc}") from None
    return handshake


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
