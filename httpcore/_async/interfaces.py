"""What a connection offers the pool, whatever protocol or route it speaks.

The pool drives connections only through this interface: it never sees sockets, h11 or
h2. ``capacity()`` is how many requests the connection may carry at once (1 for
HTTP/1.1, the server's stream limit for HTTP/2), which is all the pool needs to
multiplex. ``has_expired()`` is the liveness check, asked only when an idle connection is
checked out.
"""

from __future__ import annotations

from .._models import Origin, Request, Response

__all__ = ["AsyncConnectionInterface", "AsyncResponseStream"]


class AsyncConnectionInterface:
    """One connection (or a connection-to-be) to a single origin."""

    origin: Origin

    async def handle_async_request(self, request: Request) -> Response:
        raise NotImplementedError()  # pragma: no cover

    def capacity(self) -> int:
        """How many requests it may carry at once, counting those in flight."""
        return 1  # pragma: no cover

    def has_expired(self) -> bool:
        """True when it must not be used again: closed, past keep-alive, or the server
        closed or sent unsolicited bytes while it was idle."""
        raise NotImplementedError()  # pragma: no cover

    def is_closed(self) -> bool:
        raise NotImplementedError()  # pragma: no cover

    async def aclose(self) -> None:
        raise NotImplementedError()  # pragma: no cover


class AsyncResponseStream:
    """A response body as every protocol hands it out: call it (``r.stream()``) or
    iterate it; it closes itself at its end or on an error, and ``aclose()`` ends it early."""

    __slots__ = ("_closed",)

    def __init__(self) -> None:
        self._closed = False

    def __call__(self) -> AsyncResponseStream:
        return self

    def __aiter__(self) -> AsyncResponseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk = await self._receive()
        except BaseException:
            await self._failed()
            raise
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def _receive(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        raise NotImplementedError()  # pragma: no cover

    async def _failed(self) -> None:
        """Receiving raised: by default, close as if the caller had."""
        await self.aclose()

    async def aclose(self) -> None:
        raise NotImplementedError()  # pragma: no cover
