"""A request body given as an iterable, looked at before the HTTP/1.1 head is framed.

Theory of operation: a body that is bytes is framed by its length. An iterable body is
only known to be empty once iterated: httpx, for one, hands every GET an iterable that
yields nothing but ``b""``. So HTTP/1.1 takes the first non-empty chunk before framing
the head (``first_chunk``): none means no body at all, not an empty chunked one, as
httpcore 1.x sends it; otherwise that chunk and the rest go as they come. A body found
empty is recorded on the request as ``b""``, so the pool may send it again on a new
connection when a kept-alive one turns out stale. HTTP/2 does not look ahead (an empty
iterable ends its stream with an empty DATA frame, harmless there). However an upload
ends (done, an error, the server refusing the rest), the iterator taken from the body is
closed (``close_body``), as ``aclosing()`` would: trio warns of async generators left to
the collector. The caller's own object (a generator, a file) is never closed by us.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["close_body", "first_chunk"]

Chunk = typing.Union[bytes, bytearray, memoryview]
_CHUNK_TYPES = (bytes, bytearray, memoryview)


async def first_chunk(content: typing.Any) -> typing.Any:
    """``b""`` for an iterable body that yields no bytes, else an iterable of its chunks
    from the first non-empty one on (the empty ones before it are dropped)."""
    if isinstance(content, AsyncIterable):
        iterator = content.__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return b""
            if not isinstance(chunk, _CHUNK_TYPES):
                if iterator is not content:
                    await close_body(iterator)
                raise TypeError(f"Request body chunks must be bytes, not {type(chunk).__name__}")
            if chunk:
                return AsyncRestOfBody(chunk, iterator, iterator is not content)
    iterator_ = iter(content)
    for chunk in iterator_:
        if not isinstance(chunk, _CHUNK_TYPES):
            raise TypeError(f"Request body chunks must be bytes, not {type(chunk).__name__}")
        if chunk:
            return _chain_sync(chunk, iterator_)
    return b""


async def close_body(content: typing.Any) -> None:
    """Close what ``first_chunk`` returned, finished or not (a no-op for bytes)."""
    close = getattr(content, "aclose", None)
    if close is not None:
        await close()


class AsyncRestOfBody:
    """A body from its first non-empty chunk on. ``aclose()`` closes the iterator taken
    from the caller's iterable (``owned``), even if iteration never started."""

    __slots__ = ("_first", "_owned", "_rest")

    def __init__(self, first: Chunk, rest: AsyncIterator[Chunk], owned: bool) -> None:
        self._first: Chunk | None = first
        self._rest = rest
        self._owned = owned

    def __aiter__(self) -> AsyncRestOfBody:
        return self

    async def __anext__(self) -> Chunk:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await self._rest.__anext__()

    async def aclose(self) -> None:
        if self._owned:
            self._owned = False
            await close_body(self._rest)


def _chain_sync(first: Chunk, rest: typing.Iterator[Chunk]) -> typing.Iterator[Chunk]:
    yield first
    yield from rest
