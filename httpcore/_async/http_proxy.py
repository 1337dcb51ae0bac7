"""Connections through an HTTP proxy: forwarding for http:// origins, CONNECT tunnels for
https:// ones, with TLS to the proxy itself when its URL is https://.

Theory of operation: both are ``AsyncHTTPConnection`` subclasses that aim the TCP
connection at the proxy and do their part of the connect in ``_establish``, under the
deadline of the whole connect (so a proxy that stalls anywhere ends in ConnectTimeout).

- Forwarding: one HTTP/1.1 connection to the proxy carries requests for any http://
  origin, each sent with its absolute URL as the target, its own ``Host`` header and the
  proxy headers (``Proxy-Authorization`` among them; trace callbacks are shown the
  caller's request instead). The pool files it under the proxy's key, so every http://
  origin reuses it.
- Tunnelling: ``CONNECT host:port`` (with the proxy headers) over the proxy connection,
  the proxy's answer read with h11; on a 2xx the stream is the origin's, and the usual
  TLS to the origin (SNI, hostname check and ALPN for the origin, so HTTP/2 works) runs
  inside it (TLS in TLS through an https proxy). Anything else is ProxyError naming the
  proxy's status and reason, its body read (bounded) and dropped. The proxy headers
  never travel inside the tunnel: they are part of the CONNECT request only.
"""

from __future__ import annotations

import typing

import h11

from .. import _trace
from .._backends.base import AsyncNetworkStream
from .._config import MAX_INFORMATIONAL, default_ssl_context, time_left
from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    ProxyError,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from .._models import URL, Origin, Request, Response
from .._proxy import Proxy
from .connection import AsyncHTTPConnection
from .tracing import start_tls_traced, traced

__all__ = ["AsyncForwardHTTPConnection", "AsyncProxyConnection", "AsyncTunnelHTTPConnection"]

READ_SIZE = 64 * 1024
MAX_DISCARDED_BODY = 64 * 1024  # of a refusal's body, read before giving up on it


class AsyncProxyConnection(AsyncHTTPConnection):
    """An ``AsyncHTTPConnection`` whose TCP connection goes to the proxy; subclasses do
    the proxy's handshake in ``_establish``."""

    # True when one connection serves every origin of its scheme (HTTP forwarding), so
    # the pool files it under the proxy rather than under the origin.
    serves_any_origin = False

    def __init__(self, origin: Origin, *, proxy: Proxy, **options: typing.Any) -> None:
        super().__init__(origin, **options)
        self._proxy = proxy
        address = proxy.origin
        self._remote = (address.host.decode("ascii"), address.port)

    async def _proxy_tls(
        self, stream: AsyncNetworkStream, deadline: float | None, trace: typing.Any
    ) -> AsyncNetworkStream:
        """TLS to the proxy itself when its URL is https://; else the stream as it is."""
        proxy = self._proxy
        if proxy.scheme != b"https":
            return stream
        context = proxy.ssl_context or default_ssl_context()
        server_hostname = self._remote[0]
        timeout = time_left(deadline)
        if trace is None:
            return await stream.start_tls(context, server_hostname, timeout)
        return await start_tls_traced(trace, stream, context, server_hostname, timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.origin} via {self._proxy.origin}] {self._connection!r}>"


class AsyncForwardHTTPConnection(AsyncProxyConnection):
    """HTTP/1.1 to the proxy, forwarding requests for any http:// origin."""

    serves_any_origin = True

    def __init__(self, origin: Origin, *, proxy: Proxy, **options: typing.Any) -> None:
        options["http1"], options["http2"] = True, False  # the proxy hop is HTTP/1.1
        super().__init__(origin, proxy=proxy, **options)

    async def _establish(
        self, stream: AsyncNetworkStream, request: Request, deadline: float | None
    ) -> AsyncNetworkStream:
        return await self._proxy_tls(stream, deadline, request.extensions.get("trace"))

    async def handle_async_request(self, request: Request) -> Response:
        return await super().handle_async_request(self._forwarded(request))

    def _forwarded(self, request: Request) -> Request:
        """The request as the proxy must see it: the absolute URL as its target, a Host
        header for the origin unless it has one, and the proxy headers."""
        url = request.url
        headers = request.headers
        if not any(name.lower() == b"host" for name, _ in headers):
            headers = [(b"Host", url.origin.authority), *headers]
        target = URL.__new__(URL)
        target.scheme, target.host, target.port = url.scheme, url.host, url.port
        target.target = bytes(url)
        # Built without re-validation: every part comes from validated models.
        forwarded = Request.__new__(Request)
        forwarded.method = request.method
        forwarded.url = target
        forwarded.headers = headers + self._proxy.headers
        forwarded.content = request.content
        extensions = request.extensions
        trace = extensions.get("trace")
        if trace is not None:
            # Trace callbacks see the caller's request, not this one with the proxy's
            # credentials in its headers.
            extensions = {**extensions, "trace": _traced_as(trace, forwarded, request)}
        forwarded.extensions = extensions
        return forwarded


def _traced_as(trace: typing.Any, forwarded: Request, request: Request) -> typing.Any:
    async def report(name: str, info: dict[str, typing.Any]) -> None:
        if info.get("request") is forwarded:
            info = {**info, "request": request}
        await trace(name, info)

    return report


class AsyncTunnelHTTPConnection(AsyncProxyConnection):
    """A CONNECT tunnel through the proxy to one origin, TLS to the origin inside it."""

    async def _establish(
        self, stream: AsyncNetworkStream, request: Request, deadline: float | None
    ) -> AsyncNetworkStream:
        trace = request.extensions.get("trace")
        tunnel = await self._proxy_tls(stream, deadline, trace)
        arguments = (tunnel, self.origin, self._proxy.headers, deadline)
        try:
            if trace is None:
                await open_tunnel(*arguments)
            else:  # reported without the headers: they hold the proxy's credentials
                await traced(trace, _trace.PROXY_CONNECT, {"origin": self.origin}, open_tunnel, *arguments)
        except BaseException:
            if tunnel is not stream:  # TLS to the proxy: the caller knows only the TCP stream
                await tunnel.aclose()
            raise
        return tunnel


async def open_tunnel(
    stream: AsyncNetworkStream, origin: Origin, headers: list[tuple[bytes, bytes]], deadline: float | None
) -> None:
    """Ask the proxy for a tunnel to ``origin`` and read its answer, all by ``deadline``."""
    host = b"[" + origin.host + b"]" if b":" in origin.host else origin.host
    authority = b"%s:%d" % (host, origin.port)
    h = h11.Connection(h11.CLIENT)
    try:
        head = h.send(
            h11.Request(method=b"CONNECT", target=authority, headers=[(b"Host", authority), *headers])
        )
        end = h.send(h11.EndOfMessage())
        assert head is not None and end is not None
        await stream.write(head + end, time_left(deadline))
        informational = 0
        while True:
            event = await _next_event(h, stream, deadline)
            if type(event) is h11.Response:
                break
            informational += 1
            if informational > MAX_INFORMATIONAL:
                raise ProxyError("The proxy sent too many informational responses to CONNECT")
        if 200 <= event.status_code < 300:
            if h.trailing_data[0]:
                raise ProxyError("The proxy sent data before the tunnel was used")
            return
        await _discard_body(h, stream, deadline)
    except h11.ProtocolError as exc:
        raise ProxyError(f"The proxy sent an invalid answer to CONNECT: {exc}") from None
    except (ReadTimeout, WriteTimeout):
        raise ConnectTimeout("Timed out waiting for the proxy to open the tunnel") from None
    except (ReadError, WriteError) as exc:
        raise ConnectError(f"The connection to the proxy failed during CONNECT: {exc}") from None
    reason = event.reason.decode("latin-1", "replace")
    raise ProxyError(f"The proxy refused to open a tunnel to {origin}: {event.status_code} {reason}".rstrip())


async def _next_event(h: h11.Connection, stream: AsyncNetworkStream, deadline: float | None) -> typing.Any:
    while True:
        event = h.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await stream.read(READ_SIZE, time_left(deadline))
        if not data and h.their_state is h11.SEND_RESPONSE:
            raise ProxyError("The proxy closed the connection before answering CONNECT")
        h.receive_data(data)


async def _discard_body(h: h11.Connection, stream: AsyncNetworkStream, deadline: float | None) -> None:
    """Read a refusal's body to its end (bounded in size), so the answer is consumed."""
    discarded = 0
    try:
        while discarded <= MAX_DISCARDED_BODY:
            event = await _next_event(h, stream, deadline)
            if type(event) is h11.Data:
                discarded += len(event.data)
            elif type(event) is h11.EndOfMessage:
                return
    except (h11.ProtocolError, ProxyError, ReadError, ReadTimeout, ConnectTimeout):
        pass  # the refusal is the error to report, whatever became of its body
