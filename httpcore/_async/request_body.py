"""A request body given as an iterable, looked at before the head is framed.

Theory of operation: a body that is bytes is framed by its length. An iterable body is
only known to be empty once iterated: httpx, for one, hands every GET an iterable that
yields nothing but ``b""``. So the protocols take the first non-empty chunk before
framing the head: none means no body at all (no chunked framing, no DATA frame), as
httpcore 1.x sends it; otherwise that chunk and the rest are sent as they come.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["first_chunk"]

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
                raise TypeError(f"Request body chunks must be bytes, not {type(chunk).__name__}")
            if chunk:
                return _chain(chunk, iterator)
    iterator_ = iter(content)
    for chunk in iterator_:
        if not isinstance(chunk, _CHUNK_TYPES):
            raise TypeError(f"Request body chunks must be bytes, not {type(chunk).__name__}")
        if chunk:
            return _chain_sync(chunk, iterator_)
    return b""


async def _chain(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    yield first
    async for chunk in rest:
        yield chunk


def _chain_sync(first: Chunk, rest: typing.Iterator[Chunk]) -> typing.Iterator[Chunk]:
    yield first
    yield from rest
