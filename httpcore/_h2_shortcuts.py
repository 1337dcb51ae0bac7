"""What we change in h2, and what we peek at inside it: every private detail of h2 the
HTTP/2 wire (``_async/http2_wire.py``) leans on, in one place.

Theory of operation. ``H2Connection`` is h2's client connection with three changes:

- A received GOAWAY leaves the connection open. h2 takes any GOAWAY as the end of
  everything: it refuses every later frame and drops what it has queued to send. RFC
  9113 lets the streams the server kept finish, so our copy of h2's state machine table
  keeps CLIENT_OPEN on RECV_GOAWAY (the wire opens no streams after one).
- What h2 queued to send is never dropped: frames of the streams the server kept, and
  the HPACK state the server has seen, must reach it.
- h2 walks every stream to count the open ones before each new stream, which makes a
  burst quadratic. The wire counts its streams itself and refuses before h2 would, so
  h2's walk (which also lets h2 forget closed streams) runs only now and then.

The peeks: ``has_output`` (is anything queued to send, without taking a copy of it),
``unparsed`` (the bytes of a frame not yet whole) and ``header_fragments_size`` (a header
block held until its last CONTINUATION). They read h2 4.x's ``_data_to_send``,
``incoming_buffer._data`` and ``incoming_buffer._headers_buffer``, and the changes use
``H2ConnectionStateMachine._transitions`` and ``H2Connection._open_streams``. Without
them each falls back to h2's own behaviour (or says "nothing"), and
``tests/test_h2_shortcuts.py`` fails, so a new h2 cannot change them unnoticed.
"""

from __future__ import annotations

import typing

import h2.config
import h2.connection

__all__ = ["H2Connection", "has_output", "header_fragments_size", "unparsed"]

_State = h2.connection.ConnectionState
_Input = h2.connection.ConnectionInputs

_transitions: dict[typing.Any, typing.Any] | None
try:
    _transitions = dict(h2.connection.H2ConnectionStateMachine._transitions)
    _transitions[(_State.CLIENT_OPEN, _Input.RECV_GOAWAY)] = (None, _State.CLIENT_OPEN)
except AttributeError:  # pragma: no cover - another h2 layout: a GOAWAY ends it all
    _transitions = None


class H2Connection(h2.connection.H2Connection):
    """h2's connection, minus the idea that a GOAWAY ends everything at once."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        if _transitions is not None:
            self.state_machine._transitions = _transitions
        self._sweep_at = 64

    def clear_outbound_data_buffer(self) -> None:
        """Keep what is queued (h2 calls this on a GOAWAY): see the theory above."""

    @property
    def open_outbound_streams(self) -> int:
        """0 until there are many streams, then h2's count (see the theory above)."""
        if len(self.streams) < self._sweep_at:
            return 0
        try:
            count: int = self._open_streams(1)
        except AttributeError:  # pragma: no cover - another h2 layout: its own count
            count = h2.connection.H2Connection.open_outbound_streams.fget(self)  # type: ignore[attr-defined]
        self._sweep_at = 2 * len(self.streams) + 64
        return count


def has_output(h: h2.connection.H2Connection) -> bool:
    """Whether h2 has bytes queued to send. ``data_to_send()`` would answer too, at the
    cost of a copy each time nothing was queued."""
    try:
        return bool(h._data_to_send)
    except AttributeError:  # pragma: no cover - another h2 layout: take them to see
        return True


def unparsed(h: h2.connection.H2Connection) -> bytes | bytearray:
    """The received bytes h2 holds that do not make a whole frame yet (h2's own buffer,
    not a copy: to be read at once, never kept)."""
    data: bytes | bytearray = getattr(h.incoming_buffer, "_data", b"")
    return data


def header_fragments_size(h: h2.connection.H2Connection) -> int:
    """The bytes of a header block h2 holds until its last CONTINUATION frame."""
    fragments = getattr(h.incoming_buffer, "_headers_buffer", None)
    if not fragments:
        return 0
    return sum([len(frame.data) for frame in fragments])
