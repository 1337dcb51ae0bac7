"""A scriptable HTTP/2 server peer for fault injection, driven by the sans-I/O ``h2``.

Theory of operation: a ``RawServer`` (see ``raw.py``) accepts connections and runs one
handler per connection in its own thread. ``h2_handler(script)`` turns a *script* into
such a handler: it wraps the connection in an ``H2Peer`` (a server-side
``h2.connection.H2Connection`` plus the socket), performs the HTTP/2 handshake, and
calls ``script(peer)``. The script then decides frame by frame what the client sees:
ordinary responses, GOAWAY in the middle of a burst, RST_STREAM, SETTINGS changes, a
window that never opens, garbage bytes, an abrupt close.

``H2Peer`` keeps what it has received per stream (``requests``), so scripts can wait
for "N complete requests" or "the headers of stream 5" without caring how frames were
interleaved. Every wait is bounded by a deadline. Frames can also be written raw
(``send_raw``) to break the protocol on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes

from .raw import Handler, RawConnection

__all__ = ["H2Peer", "H2Request", "Script", "h2_handler"]

Script = Callable[["H2Peer"], None]


@dataclass
class H2Request:
    """What the client sent on one stream."""

    stream_id: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    frame_sizes: list[int] = field(default_factory=list)
    complete: bool = False
    reset: bool = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def path(self) -> bytes:
        return self.header(b":path") or b""


class H2Peer:
    """The server side of one HTTP/2 connection, step by step."""

    def __init__(
        self,
        conn: RawConnection,
        settings: dict[int, int] | None = None,
        auto_window: bool = True,
    ) -> None:
        self.conn = conn
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.settings = settings
        self.auto_window = auto_window  # credit received DATA back at once
        self.requests: dict[int, H2Request] = {}
        self.answered: set[int] = set()  # streams whose response headers went out
        self.events: list[h2.events.Event] = []
        self.closed = False

    # -- plumbing ----------------------------------------------------------------

    def start(self) -> None:
        self.h2.initiate_connection()
        if self.settings:
            # In force once the client acknowledges them, as RFC 9113 has it.
            self.h2.update_settings(self.settings)
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.conn.send(data)

    def send_raw(self, data: bytes) -> None:
        self.conn.send(data)

    def receive(self, timeout: float = 5.0) -> list[h2.events.Event]:
        """One read from the client, fed to h2; [] and ``closed`` set on EOF."""
        data = self.conn.recv(65536, timeout=timeout)
        if not data:
            self.closed = True
            return []
        events = self.h2.receive_data(data)
        for event in events:
            self._record(event)
        self.events.extend(events)
        self.flush()
        return events

    def _record(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            request = self.requests.setdefault(event.stream_id, H2Request(event.stream_id))
            request.headers = [(bytes(k), bytes(v)) for k, v in event.headers]
        elif isinstance(event, h2.events.DataReceived):
            request = self.requests.setdefault(event.stream_id, H2Request(event.stream_id))
            request.body += event.data
            request.frame_sizes.append(len(event.data))
            if self.auto_window and event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.requests.setdefault(event.stream_id, H2Request(event.stream_id)).complete = True
        elif isinstance(event, h2.events.StreamReset):
            self.requests.setdefault(event.stream_id, H2Request(event.stream_id)).reset = True

    def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Receive until ``condition()``; False on EOF or when the deadline passes."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return False
            try:
                self.receive(remaining)
            except TimeoutError:
                return False
        return True

    def wait_requests(self, count: int, timeout: float = 5.0) -> list[H2Request]:
        """Wait until ``count`` requests are complete; returns the complete ones."""
        self.wait(lambda: len(self.complete()) >= count, timeout)
        return self.complete()

    def wait_stream(self, stream_id: int, timeout: float = 5.0) -> H2Request:
        """Wait until the request on ``stream_id`` is complete (or reset) and return it."""

        def done() -> bool:
            request = self.requests.get(stream_id)
            return request is not None and (request.complete or request.reset)

        if not self.wait(done, timeout):
            raise TimeoutError(f"h2raw: stream {stream_id} did not complete")
        return self.requests[stream_id]

    def wait_headers(self, stream_id: int, timeout: float = 5.0) -> H2Request:
        """Wait until the headers of ``stream_id`` arrived and return its request."""
        if not self.wait(lambda: stream_id in self.requests, timeout):
            raise TimeoutError(f"h2raw: no headers on stream {stream_id}")
        return self.requests[stream_id]

    def complete(self) -> list[H2Request]:
        return [r for r in self.requests.values() if r.complete and not r.reset]

    def wait_closed(self, timeout: float = 5.0) -> bool:
        return self.wait(lambda: False, timeout) or self.closed

    # -- answering ---------------------------------------------------------------

    def respond(
        self,
        stream_id: int,
        status: int = 200,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] = (),
        end: bool = True,
    ) -> None:
        fields = [(b":status", b"%d" % status), *headers]
        self.answered.add(stream_id)
        if end and not body:
            self.h2.send_headers(stream_id, fields, end_stream=True)
        else:
            self.h2.send_headers(stream_id, fields)
            if body:
                self.send_body(stream_id, body, end=end)
        self.flush()

    def send_body(self, stream_id: int, body: bytes, end: bool = True, timeout: float = 5.0) -> None:
        """Send ``body`` within the client's windows (waiting for WINDOW_UPDATE)."""
        view = memoryview(body)
        deadline = time.monotonic() + timeout
        while view:
            window = self.h2.local_flow_control_window(stream_id)
            if window <= 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("h2raw: client never opened its window")
                self.receive(max(0.01, deadline - time.monotonic()))
                continue
            size = min(window, self.h2.max_outbound_frame_size, len(view))
            self.h2.send_data(stream_id, view[:size].tobytes())
            view = view[size:]
            self.flush()
        if end:
            self.h2.end_stream(stream_id)
            self.flush()

    def reset(self, stream_id: int, error_code: int = ErrorCodes.INTERNAL_ERROR) -> None:
        self.h2.reset_stream(stream_id, error_code)
        self.flush()

    def goaway(self, last_stream_id: int, error_code: int = ErrorCodes.NO_ERROR) -> None:
        self.h2.close_connection(error_code=error_code, last_stream_id=last_stream_id)
        self.flush()
        # h2 refuses to do anything after its own GOAWAY; a real server finishes the
        # streams it kept, so let it.
        self.h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN

    def update_settings(self, settings: dict[int, int]) -> None:
        self.h2.update_settings(settings)
        self.flush()

    def serve_forever(self, timeout: float = 10.0) -> None:
        """Answer every complete request with ``200 ok:<path>`` until the client leaves."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            for request in self.complete():
                if request.stream_id not in self.answered:
                    self.respond(request.stream_id, body=b"ok:" + request.path)
            try:
                self.receive(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                return


def h2_handler(script: Script, settings: dict[int, int] | None = None, auto_window: bool = True) -> Handler:
    """A RawServer handler: HTTP/2 handshake, then ``script(peer)``."""

    def handler(conn: RawConnection) -> None:
        peer = H2Peer(conn, settings=settings, auto_window=auto_window)
        peer.start()
        script(peer)

    return handler
