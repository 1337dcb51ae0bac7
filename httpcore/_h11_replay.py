"""Whole HTTP/1.1 exchanges replayed from what h11 did with the same bytes before.

Theory of operation. A client sends the same few request heads again and again, and a
server answers them with the same few response heads (nginx's change only with its Date,
once a second). For such an exchange h11 is a pure function of the bytes: starting from
an idle keep-alive connection, the same request head, body length and response head,
with the whole body in the same read and nothing after it, always take h11 through the
same states back to idle, with the same response event, and write the same request
bytes. So the first exchange of each kind goes through h11, which validates, frames and
decides keep-alive as always; when it ends with the connection idle again, it is kept
as a :class:`Cycle` under its :class:`RequestHead`. The next exchange with byte-identical
heads writes the bytes h11 wrote and hands back the response h11 made, without calling
h11 at all: h11's state before and after such a cycle is the same (idle, keep-alive, an
empty buffer, the peer's version already known), so there is nothing to tell it. A
request body framed by Content-Length goes out as it is (h11 adds nothing to it), bytes
or streamed: the caller counts it against the length, and a chunk too many or an end
too soon is left to h11 to refuse. Any other outcome (a different head, a body split
across reads or followed by more bytes, a first exchange on the connection, a request
not sent whole) catches h11 up with the request it did not see, as far as it went (the
same events, in order), and lets it read the response as usual.

h11 stays the parser of record: every distinct head pair is parsed and checked by h11
first, and a replay needs every byte to match. Only bodies framed by Content-Length (or
none, as for HEAD, 204 and 304) are replayed: chunked or close-delimited framing depends
on more than the head.
"""

from __future__ import annotations

import functools
import os

import h11

from ._h11_shortcuts import count_body_chunk

__all__ = ["CYCLES_KEPT", "ENABLED", "Cycle", "RequestHead", "request_head"]

# False: every exchange goes through h11. The tests compare both ways; an operator who
# suspects the replay sets HTTPCORE_H11_REPLAY=0 in the environment.
ENABLED = os.environ.get("HTTPCORE_H11_REPLAY", "1").strip() != "0"
CYCLES_KEPT = 16  # distinct response heads remembered per request head (then forgotten)


class Cycle:
    """One exchange h11 completed back to idle: the response it made of the head."""

    __slots__ = ("body_length", "event", "version")

    def __init__(self, event: h11.Response, body_length: int, version: bytes) -> None:
        self.event = event
        self.body_length = body_length
        self.version = version  # the response's "HTTP/1.1" as the caller sees it


class RequestHead:
    """h11's event for one request head, and once h11 has sent it with a body of some
    length, the bytes it wrote and the exchanges that followed."""

    __slots__ = ("body_length", "cycles", "event", "wire")

    def __init__(self, event: h11.Request) -> None:
        self.event = event
        self.wire: bytes | None = None  # the head as h11 wrote it (no body)
        self.body_length = -1  # of the body sent with it when ``wire`` was recorded
        self.cycles: dict[bytes, Cycle] = {}

    def sent(self, wire: bytes, body_length: int) -> None:
        """h11 wrote this head as ``wire`` and a body of ``body_length`` bytes after it
        with no complaint: the same again may go out without h11."""
        if self.wire is None:
            self.wire = wire
            self.body_length = body_length

    def message(self, body: bytes | None) -> bytes:
        """The request as h11 wrote it, with ``body`` (as long as the body then)."""
        wire = self.wire
        assert wire is not None
        return wire + body if body else wire

    def replayable(self, body_length: int) -> bool:
        """Whether a request with a body of ``body_length`` bytes (-1: streamed, of the
        length its head says) may go out as h11 wrote it."""
        return ENABLED and self.wire is not None and body_length in (self.body_length, -1)

    def remember(self, head: bytes, event: h11.Response, body_length: int, version: bytes) -> None:
        """h11 took a connection from idle back to idle with this request, ``head`` and
        exactly ``body_length`` body bytes after it, framed by Content-Length."""
        cycles = self.cycles
        if len(cycles) >= CYCLES_KEPT:
            cycles.clear()
        cycles[head] = Cycle(event, body_length, version)

    def catch_up(self, h: h11.Connection, sent: int, ended: bool) -> None:
        """Tell ``h`` of the request that went out without it, as far as it went: the
        head, ``sent`` body bytes (counted, as h11 frames them by Content-Length) and,
        if ``ended``, the end: the events h11 saw the first time, answered with the same
        bytes, already sent."""
        h.send(self.event)
        if sent and not count_body_chunk(h, sent):
            h.send(h11.Data(data=bytes(sent)))  # h11's own count; the bytes are not used
        if ended:
            h.send(h11.EndOfMessage())


@functools.lru_cache(maxsize=128)
def request_head(method: bytes, target: bytes, headers: tuple[tuple[bytes, bytes], ...]) -> RequestHead:
    """The record of a request head, its h11 event built (and validated by h11) once per
    distinct head: building one costs more than sending it. h11 validates the head even
    though the models did, because a request's header list can be changed after it was
    built and nothing unchecked may reach the wire; the cache is keyed by the exact bytes,
    so a changed head is validated anew. h11 never changes an event it is given."""
    return RequestHead(h11.Request(method=method, target=target, headers=list(headers)))
