"""What a connection offers the pool, whatever protocol or route it speaks.

The pool drives connections only through this interface: it never sees sockets, h11 or
h2. ``capacity()`` is how many requests the connection may carry at once (1 for
HTTP/1.1, the server's stream limit for HTTP/2), which is all the pool needs to
multiplex. ``has_expired()`` is the liveness check, asked only when an idle connection is
checked out.
"""

from __future__ import annotations

from .._models import Origin, Request, Response

__all__ = ["AsyncConnectionInterface"]


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
