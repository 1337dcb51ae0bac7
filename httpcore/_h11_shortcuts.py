"""Shortcuts through h11: a response head parsed once per distinct head, a body h11
already holds taken whole, a request body framed by Content-Length counted, not copied.

Theory of operation. h11 parses every response head from scratch (a regex per line,
validation, an event object), which on a small keep-alive response costs a fifth of a
client's CPU; yet a server sends the same head bytes again and again (nginx's change
only with the Date, once a second). ``install_head_cache(h)`` puts a caching reader in
place of h11's own for the response head of the current cycle: it looks for the end of
the head in h11's buffer and, when those exact bytes were parsed before, takes them out
of the buffer and returns the event h11 made of them then; otherwise h11's reader parses
the head and, if it consumed exactly those bytes, the event is kept. h11 stays the parser
of record: every distinct head is parsed and validated by h11, and an event is reused
only for byte-identical input, which h11 (a pure function of the bytes here) would parse
the same way. Events are immutable, so one serves any number of responses and
connections. h11 still runs its state machine on every event.

``take_counted_body(h)``: when a body framed by Content-Length is already whole in h11's
buffer (it came with the head), its bytes are taken out and h11's count set to zero, so
h11 produces the EndOfMessage at once instead of a Data event first: h11 still frames
the body and ends the message; only the Data event's bookkeeping is skipped.
``count_body_received(h, data)`` does the same for a larger body as it comes from the
network: the bytes are counted off h11's reader and handed on uncopied, and only what
follows the body goes into h11's buffer. ``body_framing(h)`` says which reader h11 chose.
``count_body_chunk(h, n)`` is the same on the way out: a request body framed by
Content-Length goes to the wire as it is, so h11 only counts it down (and still refuses
a body too long or too short); a chunk that does not fit goes through h11 for its error.

They lean on private details of h11 0.16 (hence the pin below 0.17): the connection's
``_reader``, ``_writer`` and ``_receive_buffer``, the reader function for a response
head, the Content-Length reader's ``_remaining`` and writer's ``_length``, the reader classes, and the
receive buffer's ``_data``/``_extract``. Without them they do nothing and h11 does all
the work; ``test_h11_shortcuts.py`` fails if they change.
"""

from __future__ import annotations

import typing

import h11

_h11_read_head: typing.Any
_ContentLengthReader: typing.Any
_ChunkedReader: typing.Any
_ContentLengthWriter: typing.Any
try:
    from h11 import _readers, _writers

    _h11_read_head = _readers.maybe_read_from_SEND_RESPONSE_server
    _ContentLengthReader = _readers.ContentLengthReader
    _ChunkedReader = _readers.ChunkedReader
    _ContentLengthWriter = _writers.ContentLengthWriter
except (ImportError, AttributeError):  # pragma: no cover - another h11 layout: h11 does it all
    _h11_read_head = _ContentLengthReader = _ChunkedReader = _ContentLengthWriter = None

# How h11 reads the body of the current response (``body_framing``).
LENGTH = "length"  # framed by Content-Length (or none at all: HEAD, 204, 304)
CHUNKED = "chunked"
UNKNOWN = "unknown"  # h11's layout is not the one known here
_FRAMINGS = {_ContentLengthReader: LENGTH, _ChunkedReader: CHUNKED}

__all__ = [
    "LENGTH",
    "CHUNKED",
    "UNKNOWN",
    "body_framing",
    "count_body_chunk",
    "count_body_received",
    "install_head_cache",
    "take_counted_body",
]

HEADS_KEPT = 128  # distinct heads remembered (then forgotten all at once)
HEAD_CACHED_MAX = 4096  # longer heads are parsed every time

_heads: dict[bytes, typing.Any] = {}


def install_head_cache(h: typing.Any) -> None:
    """Read the coming response head of ``h`` (an h11 client connection waiting for one)
    through the cache."""
    if _h11_read_head is not None and getattr(h, "_reader", None) is _h11_read_head:
        h._reader = _read_head


def take_counted_body(h: typing.Any) -> bytes | None:
    """The whole body of the current response, taken from ``h``'s buffer, when it is
    framed by Content-Length and all there; else None (and nothing is taken)."""
    reader: typing.Any = getattr(h, "_reader", None)
    if _ContentLengthReader is None or type(reader) is not _ContentLengthReader:
        return None
    buf = getattr(h, "_receive_buffer", None)
    remaining: int = reader._remaining
    if buf is None or len(buf) < remaining:
        return None
    body = bytes(buf._data[:remaining])
    if remaining:
        buf._extract(remaining)
        reader._remaining = 0
    return body


def body_framing(h: typing.Any) -> str | None:
    """How h11 frames the body of the response whose head it just read: LENGTH, CHUNKED,
    UNKNOWN, or None for any other (read until the connection closes)."""
    if _ContentLengthReader is None:
        return UNKNOWN
    return _FRAMINGS.get(type(getattr(h, "_reader", None)))


def count_body_received(h: typing.Any, data: bytes) -> int | None:
    """How many bytes of ``data`` (just read, not given to h11) belong to the body h11 is
    reading by Content-Length, counted off h11's reader as if h11 had read them; None
    when h11 is not reading such a body (then nothing is counted).

    h11 would copy every body byte three times (into its buffer, then two slices out);
    its reader of such a body only counts down what is left and asks for more only with
    its buffer empty, so the caller may hand those bytes on as they are, and give h11
    only what comes after them."""
    reader: typing.Any = getattr(h, "_reader", None)
    if _ContentLengthReader is None or type(reader) is not _ContentLengthReader:
        return None
    remaining: int = reader._remaining
    taken = min(remaining, len(data))
    reader._remaining = remaining - taken
    return taken


def count_body_chunk(h: typing.Any, size: int) -> bool:
    """Whether ``size`` more bytes of the request body may go to the wire as they are:
    h11 frames the body by Content-Length and they fit in it. If so, h11's count is
    taken down by them, as sending them through h11 would have."""
    writer: typing.Any = getattr(h, "_writer", None)
    if _ContentLengthWriter is None or type(writer) is not _ContentLengthWriter:
        return False
    if h.our_state is not h11.SEND_BODY or size > writer._length:
        return False  # h11 says what is wrong
    writer._length -= size
    return True


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
