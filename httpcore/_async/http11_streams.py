"""What the caller holds of an HTTP/1.1 exchange: the response body as a stream, and the
network stream itself once the protocol has switched.

Theory of operation: ``AsyncHTTP11ResponseStream`` pulls the body from its connection a
chunk at a time (the bytes that came with the head first) and hands the connection back
when closed or read to the end; traced, it reports each step. ``AsyncUpgradedStream`` is
the connection's network stream after a 101 or a CONNECT tunnel, giving back first the
bytes already read past the response head.
"""

from __future__ import annotations

import ssl
import typing

from .. import _trace
from .._backends.base import AsyncNetworkStream
from .._models import Request
from .interfaces import AsyncResponseStream

if typing.TYPE_CHECKING:
    from .http11 import AsyncHTTP11Connection

__all__ = ["AsyncHTTP11ResponseStream", "AsyncUpgradedStream"]


class AsyncHTTP11ResponseStream(AsyncResponseStream):
    """A response body pulled chunk by chunk from its connection; closing it (or reading
    to the end) hands the connection back."""

    __slots__ = ("_body_started", "_connection", "_first", "_request", "_timeout", "_trace")

    def __init__(
        self,
        connection: AsyncHTTP11Connection,
        timeout: float | None,
        trace: typing.Any,
        first: bytes,
        request: Request,
    ) -> None:
        self._connection = connection
        self._timeout = timeout
        self._trace = trace
        self._first = first  # body bytes that arrived with the head
        self._request = request
        self._body_started = False
        self._closed = False

    async def _receive(self) -> bytes | None:
        first = self._first
        if first:
            self._first = b""
            return first
        if self._trace is not None:
            return await self._receive_traced(self._trace)
        return await self._connection._receive_body_chunk(self._timeout)

    async def _receive_traced(self, trace: typing.Any) -> bytes | None:
        step = _trace.HTTP11_RECEIVE_RESPONSE_BODY
        try:
            if not self._body_started:
                self._body_started = True
                await trace(step + _trace.STARTED, {"request": self._request})
            chunk = await self._connection._receive_body_chunk(self._timeout)
            if chunk is None:
                await trace(step + _trace.COMPLETE, {"return_value": None})
        except BaseException as exc:
            # Mid-response whatever raised (the connection, or a callback): never reused.
            await self._connection._close()
            await trace(step + _trace.FAILED, {"exception": exc})
            raise
        return chunk

    async def _failed(self) -> None:
        self._closed = True  # the connection closed itself on the error

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            trace = self._trace
            if trace is None:
                await self._connection._response_closed()
                return
            try:
                await trace(_trace.HTTP11_RESPONSE_CLOSED + _trace.STARTED, {})
            finally:
                await self._connection._response_closed()
            await trace(_trace.HTTP11_RESPONSE_CLOSED + _trace.COMPLETE, {"return_value": None})


class AsyncUpgradedStream(AsyncNetworkStream):
    """The network stream of a switched protocol (a 101 response, or a CONNECT tunnel),
    handed to the caller: the bytes already read past the response head come first."""

    def __init__(self, stream: AsyncNetworkStream, unread: bytes) -> None:
        self._stream = stream
        self._unread = unread

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        unread = self._unread
        if unread:
            self._unread = unread[max_bytes:]
            return unread[:max_bytes]
        return await self._stream.read(max_bytes, timeout)

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        await self._stream.write(data, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        return await self._stream.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)

    def is_readable(self) -> bool:
        return bool(self._unread) or self._stream.is_readable()
