"""Response heads parsed by h11 once per distinct head, not once per response.

Theory of operation: h11 parses every response head from scratch (a regex per line,
validation, an event object), which on a small keep-alive response costs a fifth of a
client's CPU; yet a server sends the same head bytes again and again (nginx's change
only with the Date, once a second). ``install(h)`` puts a caching reader in place of
h11's own for the response head of the current cycle: it looks for the end of the head
in h11's buffer and, when those exact bytes were parsed before, takes them out of the
buffer and returns the event h11 made of them then; otherwise h11's reader parses the
head and, if it consumed exactly those bytes, the event is kept. h11 stays the parser of
record: every distinct head is parsed and validated by h11, and an event is reused only
for byte-identical input, which h11 (a pure function of the bytes here) would parse the
same way. Events are immutable, so one serves any number of responses and connections.
h11 still runs its state machine on every event.

This leans on three private details of h11 0.16 (hence the pin below 0.17): the
connection's ``_reader`` attribute, the reader function for a response head, and the
receive buffer's ``_data``/``_extract``. Without them ``install`` does nothing and h11
parses every head; ``test_response_head_parsed_once`` fails if they change.
"""

from __future__ import annotations

import typing

_h11_read_head: typing.Any
try:
    from h11 import _readers

    _h11_read_head = _readers.maybe_read_from_SEND_RESPONSE_server
except (ImportError, AttributeError):  # pragma: no cover - another h11 layout: h11 parses every head
    _h11_read_head = None

__all__ = ["install"]

HEADS_KEPT = 128  # distinct heads remembered (then forgotten all at once)
HEAD_CACHED_MAX = 4096  # longer heads are parsed every time

_heads: dict[bytes, typing.Any] = {}


def install(h: typing.Any) -> None:
    """Read the coming response head of ``h`` (an h11 client connection waiting for one)
    through the cache."""
    if _h11_read_head is not None and getattr(h, "_reader", None) is _h11_read_head:
        h._reader = _read_head


def _read_head(buf: typing.Any) -> typing.Any:
    data = buf._data
    end = data.find(b"\r\n\r\n") + 4
    if not 4 < end <= HEAD_CACHED_MAX:
        return _h11_read_head(buf)
    key = bytes(data[:end])
    event = _heads.get(key)
    if event is not None:
        buf._extract(end)
        return event
    size = len(data)
    event = _h11_read_head(buf)
    if event is not None and len(buf._data) == size - end:  # h11 took exactly this head
        if len(_heads) >= HEADS_KEPT:
            _heads.clear()
        _heads[key] = event
    return event
