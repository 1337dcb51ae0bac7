"""The wire of one HTTP/2 connection: one ``h2`` state machine shared by every stream.

Theory of operation. The state machine is guarded by a state lock (free under asyncio
and trio, a real lock under threads) that is never held across I/O, and nothing runs in
the background: the tasks (or threads) of the requests move the bytes themselves.

- Writing: whoever changes the h2 state marks it dirty, then flushes. One writer at a
  time holds the write lock and writes everything h2 has queued, looping until nothing
  is left, so frames reach the wire in the order h2 produced them; it first lets the
  other ready tasks queue theirs, so a burst of requests costs one write. Uploads wait
  for the lock (that is their back-pressure); new streams, acknowledgements and resets
  only try it, because the holder will send their bytes before it lets go.
- Reading: a stream that needs something from the network (its response head, body
  data, or send window) becomes the reader if nobody is reading; otherwise it parks on
  its own event. The reader feeds what it reads to h2 and hands each event to the
  stream it concerns (``_Stream``), waking that stream; it keeps reading until its own
  stream is satisfied, then wakes one parked stream to take over. So a response is read
  by one task and handed to another without a task per stream and without polling.
- Failures of the wire: a stream reset by the server fails that stream alone; a GOAWAY
  marks the streams the server never processed with ``ConnectionNotAvailable``; a
  broken connection fails every stream in flight.
- A header block over SETTINGS_MAX_HEADER_LIST_SIZE fails only its stream (reset when
  the request gives it up): hpack decodes on past our limit, up to
  ``MAX_HEADER_LIST_DECODED``, so its dynamic table stays the one the server encodes
  against (RFC 9113 section 10.5.1: a refused field block is still processed unless
  the connection is closed).
  Past that bound hpack stops mid-block, the table is lost, and so is the connection;
  likewise a block whose encoded fragments outgrow twice the limit is never decoded.
- A silent connection: a read wait (its timeout at least ``2 * MIN_PING_SPAN``) stops
  ``min(PING_TIMEOUT, timeout / 2)`` short of its deadline and, if the connection has
  received nothing in the last half of the wait (between frames, or in the middle of
  one: a frame that promised more bytes than came), sends a PING and waits on. Until
  the ACK the connection takes no new streams: the pool opens another. If the wait
  times out with no ACK and not a byte since the PING, the connection is dead and
  fails, and the requests on it with it (those never answered go to a new connection
  if idempotent). Bytes but no ACK: alive but slow, it finishes its streams and closes,
  unless the ACK comes first. The ``ReadTimeout`` still comes at its deadline, and no
  task runs in the background: the request waiting anyway does the checking.

What a request does with its stream (opening it, the body, flow-control credit, giving
it up) is ``http2.py``'s; this module only moves frames. What we change in h2, and
every private detail of it we read, is in ``_h2_shortcuts.py``.
"""

from __future__ import annotations

import collections
import time
import typing
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .._backends.base import AsyncNetworkStream
from .._config import MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, MAX_INFORMATIONAL
from .._exceptions import (
    ConnectionNotAvailable,
    HTTPCoreError,
    ReadTimeout,
    RemoteProtocolError,
)
from .._h2_shortcuts import H2Connection, has_output, header_fragments_size, unparsed
from .._library import current_async_library
from .._synchronization import AsyncEvent, AsyncStateLock

__all__ = ["AsyncHTTP2Wire"]

READ_SIZE = 128 * 1024  # as HTTP/1.1: larger reads would cost page faults (mmap threshold)
# Until the server's SETTINGS arrive we assume the stream limit RFC 9113 recommends.
DEFAULT_MAX_STREAMS = 100
MAX_FRAME_SIZE = 65536
_HEADER_LIST_TOO_LARGE = (
    f"The server sent a header list larger than {MAX_HEADER_LIST_SIZE} bytes,"
    " the SETTINGS_MAX_HEADER_LIST_SIZE we advertise"
)
_HPACK_LOST = "; decoding it stopped part-way, so the connection's HPACK state is lost"
_UNDECODED = "; its encoded block grew past twice that, so it is not decoded and the connection ends"
# How long closing may wait to hand the server a GOAWAY.
CLOSE_TIMEOUT = 1.0
# An idle connection that turned readable has its data already: this only bounds the
# rare read that finds a TLS record but no application data in it.
CATCH_UP_TIMEOUT = 0.05
# A read wait on a quiet connection PINGs it this long before its deadline, or half its
# timeout if that is less: a live server answers in a round trip. A read timeout under
# twice MIN_PING_SPAN cannot tell a dead connection from a long round trip: no PING.
PING_TIMEOUT = 1.0
MIN_PING_SPAN = 0.25


_DataReceived = h2.events.DataReceived
_ResponseReceived = h2.events.ResponseReceived
_InformationalReceived = h2.events.InformationalResponseReceived
_StreamEnded = h2.events.StreamEnded
_StreamReset = h2.events.StreamReset
_WindowUpdated = h2.events.WindowUpdated
_RemoteSettingsChanged = h2.events.RemoteSettingsChanged
_ConnectionTerminated = h2.events.ConnectionTerminated
_PingAckReceived = h2.events.PingAckReceived
_STREAM_EVENTS = frozenset({_DataReceived, _ResponseReceived, _StreamEnded, _StreamReset})


class _Stream:
    """What one request's stream has received so far, and how to wake its task."""

    __slots__ = (
        "answered",
        "chunks",
        "early",
        "ended",
        "error",
        "event",
        "headers",
        "informational",
        "sent_end",
        "stop_sending",
        "stream_id",
        "wants_window",
        "write_timeout",
    )

    def __init__(self, write_timeout: float | None, event: AsyncEvent) -> None:
        self.stream_id = 0
        self.event = event
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.informational = 0  # 1xx heads received, bounded by MAX_INFORMATIONAL
        self.chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self.ended = False  # the server sent END_STREAM
        self.sent_end = False  # we sent END_STREAM
        self.stop_sending = False  # the server wants no more of the request body
        self.wants_window = False
        self.error: Exception | None = None
        self.answered = False  # the server sent something on this stream
        self.early = False  # opened before the server's SETTINGS told us its stream limit
        self.write_timeout = write_timeout


class _Probe(Exception):
    """A read wait reached the moment to check on its connection (not a timeout)."""


def _header_list_size(headers: list[tuple[bytes, bytes]]) -> int:
    """A decoded header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it."""
    return sum([len(name) + len(value) for name, value in headers]) + 32 * len(headers)


def _error_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"


class AsyncHTTP2Wire:
    """The shared h2 state machine of one connection, and the moving of its frames."""

    def __init__(self, stream: AsyncNetworkStream) -> None:
        self._stream = stream
        # Request heads are validated when built (``Request`` and ``_request_headers``), so
        # h2's own outbound checks would only repeat them; its normalising stays on.
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False
        )
        self._h2 = H2Connection(config)
        self._lock = AsyncStateLock()
        library = current_async_library()  # the running library's lock, events, checkpoint
        self._write_lock = library.lock()
        self._new_event = library.event
        self._checkpoint = library.checkpoint
        self._dirty = False  # h2 may hold bytes nobody has taken for writing yet
        self._reading = False  # some task is reading from the network
        self._parked: collections.OrderedDict[_Stream, None] = collections.OrderedDict()
        self._streams: dict[int, _Stream] = {}
        self._max_streams = DEFAULT_MAX_STREAMS
        self._settings_known = False
        self._stream_closed = False
        self._error: Exception | None = None  # why the connection failed
        self._goaway: int | None = None  # last_stream_id of the server's GOAWAY
        self._received_at = time.monotonic()  # when bytes last came from the server
        self._pings_sent = 0  # our PINGs are numbered: their ACKs come back in order
        self._pings_acked = 0

    # -- writing -------------------------------------------------------------------

    async def _flush(self, timeout: float | None) -> None:
        """Write everything h2 has queued, waiting for the writer ahead of us if any."""
        await self._write_lock.acquire()
        await self._write_held(timeout)

    async def _flush_nowait(self, timeout: float | None) -> None:
        """Write what h2 has queued unless someone is writing: they will send it."""
        with self._lock:
            if not self._dirty or not self._write_lock.try_acquire():
                return
        await self._write_held(timeout)

    async def _write_held(self, timeout: float | None) -> None:
        """With the write lock held: write until h2 has nothing queued, then let go."""
        lock = self._write_lock
        try:
            # Let the other tasks ready to run queue their frames first: a burst of
            # requests then costs one write, not one each.
            await self._checkpoint()
            while True:
                with self._lock:
                    if not self._dirty:
                        lock.release()
                        return
                    self._dirty = False
                    data = self._h2.data_to_send()
                if data:
                    await self._stream.write(data, timeout)
        except BaseException as exc:
            lock.release()
            if isinstance(exc, HTTPCoreError):
                # Part of a frame may be on the wire: nothing more can be sent safely.
                await self._fail(
                    RemoteProtocolError(f"Writing to the server failed ({type(exc).__name__}: {exc})")
                )
            raise

    # -- reading -------------------------------------------------------------------

    async def _wait_for(
        self,
        stream: _Stream,
        ready: Callable[[_Stream], bool],
        timeout: float | None,
        timeout_error: type[Exception] = ReadTimeout,
    ) -> None:
        """Return once ``ready(stream)`` or the stream failed: read the network ourselves
        if nobody is reading, else park until the reader wakes us. A read wait long
        enough stops a probe's span short of its deadline to PING a quiet connection,
        and at its deadline fails the connection if nothing came back."""
        deadline = probe_at = None
        started = time.monotonic()
        if timeout is not None:
            deadline = started + timeout
            if timeout_error is ReadTimeout and timeout >= 2 * MIN_PING_SPAN:
                probe_at = deadline - min(PING_TIMEOUT, timeout / 2)
        ping: tuple[int, float] | None = None  # our PING's number, and when it went
        try:
            while True:
                with self._lock:
                    if stream.error is not None or ready(stream):
                        return
                    lead = not self._reading
                    if lead:
                        self._reading = True
                    else:
                        stream.event.clear()
                        self._parked[stream] = None
                until = deadline if probe_at is None else probe_at
                if lead:
                    try:
                        await self._read_until(
                            stream, ready, until, timeout_error if probe_at is None else _Probe
                        )
                    except _Probe:
                        probe_at = None
                        ping = await self._ping_if_quiet(started, deadline)
                    continue
                remaining = None if until is None else until - time.monotonic()
                woken = False
                try:
                    woken = await stream.event.wait(None if remaining is None else max(remaining, 0.0))
                finally:
                    if not woken:
                        with self._lock:
                            self._parked.pop(stream, None)
                            if not self._reading:
                                self._wake_reader()  # in case we were chosen as the next reader
                if not woken:
                    if probe_at is not None:
                        probe_at = None
                        ping = await self._ping_if_quiet(started, deadline)
                        continue
                    with self._lock:
                        if stream.error is not None or ready(stream):  # pragma: no cover - a near miss
                            return
                    raise timeout_error(f"Timed out waiting for the server (stream {stream.stream_id})")
        except ReadTimeout:
            if ping is not None:
                await self._judge(*ping)
            raise

    async def _ping_if_quiet(self, started: float, deadline: float | None) -> tuple[int, float] | None:
        """Halfway or later through a read wait: if the connection received nothing in
        the last half of it, PING it (or join the PING in flight)."""
        now = time.monotonic()
        with self._lock:
            if self._error is not None or self._stream_closed:  # pragma: no cover - a near miss
                return None
            if now - self._received_at < (now - started) / 2:
                return None  # the server is sending: no reason to doubt the connection
            if self._pings_acked == self._pings_sent:
                try:
                    self._h2.ping((self._pings_sent + 1).to_bytes(8, "big"))
                except h2.exceptions.ProtocolError:  # pragma: no cover - aclose() sent our GOAWAY
                    return None
                self._pings_sent += 1
                self._dirty = True
            number = self._pings_sent
        try:
            await self._flush_nowait(None if deadline is None else max(deadline - now, 0.0))
        except HTTPCoreError:  # pragma: no cover - writing failed: the connection failed with it
            return None
        return number, now

    async def _judge(self, number: int, sent_at: float) -> None:
        """A read wait that sent PING ``number`` timed out: unless its ACK or any other
        byte came back since, the connection is dead."""
        with self._lock:
            if self._pings_acked >= number or self._received_at >= sent_at:
                return  # alive (if slow, it takes no new stream until the ACK)
            if self._error is not None or self._stream_closed:  # pragma: no cover - a near miss
                return
        waited = time.monotonic() - sent_at
        await self._fail(
            RemoteProtocolError(f"The connection went silent: no answer to a PING in {waited:.2f} seconds")
        )

    async def _read_until(
        self,
        stream: _Stream,
        ready: Callable[[_Stream], bool],
        deadline: float | None,
        timeout_error: type[Exception],
    ) -> None:
        """As the reader: read and dispatch until our stream is ready, then hand over."""
        try:
            while True:
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise timeout_error(f"Timed out waiting for the server (stream {stream.stream_id})")
                try:
                    await self._receive(remaining, stream.write_timeout)
                except ReadTimeout:
                    if timeout_error is ReadTimeout:
                        raise
                    raise timeout_error(
                        f"Timed out waiting for the server (stream {stream.stream_id})"
                    ) from None
                with self._lock:
                    if stream.error is not None or ready(stream):
                        return
        finally:
            with self._lock:
                self._reading = False
                self._wake_reader()

    async def _catch_up(self, write_timeout: float | None) -> None:
        """Idle, yet the server sent something: as the reader, read it before opening a
        stream. Mostly frames that were in flight when the last stream ended; a GOAWAY or
        a close makes the new request go elsewhere, unsent."""
        try:
            await self._receive(CATCH_UP_TIMEOUT, write_timeout)
        except ReadTimeout:  # pragma: no cover - a TLS record with no application data
            pass
        finally:
            with self._lock:
                self._reading = False
                self._wake_reader()

    def _wake_reader(self) -> None:
        """Under the lock, with nobody reading: wake one parked stream to read."""
        if self._parked:
            stream, _ = self._parked.popitem(last=False)
            stream.event.set()

    async def _receive(self, timeout: float | None, write_timeout: float | None) -> None:
        """Read once from the network and dispatch what h2 makes of it."""
        try:
            data = await self._stream.read(READ_SIZE, timeout)
        except ReadTimeout:
            raise
        except HTTPCoreError as exc:
            await self._fail(
                RemoteProtocolError(f"Reading from the server failed ({type(exc).__name__}: {exc})")
            )
            return
        if not data:
            await self._fail(RemoteProtocolError("The server closed the connection"))
            return
        with self._lock:
            if self._error is not None:  # pragma: no cover - it failed while we were reading
                return
            self._received_at = time.monotonic()
            h = self._h2
            error: Exception | None
            try:
                events = h.receive_data(data)
            except h2.exceptions.DenialOfServiceError:  # hpack's bound on a decoded header list
                error = RemoteProtocolError(_HEADER_LIST_TOO_LARGE + _HPACK_LOST)
            except h2.exceptions.ProtocolError as exc:
                error = RemoteProtocolError(f"The server broke the HTTP/2 protocol: {exc}")
            else:
                error = self._dispatch(events)
                # h2 checks a frame's size only once all of it has arrived: a server that
                # is not speaking HTTP/2 would have us buffer up to 16 MiB of garbage.
                pending = unparsed(h)
                if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > h.max_inbound_frame_size:
                    if pending.startswith(b"HTTP/"):
                        reason = "the server answered in HTTP/1.x, not HTTP/2"
                    else:
                        reason = "a frame is larger than the size we allow"
                    error = RemoteProtocolError(f"The server broke the HTTP/2 protocol: {reason}")
                # h2 holds a header block's fragments until its last one (up to 64 frames
                # of MAX_FRAME_SIZE) before hpack measures it: refuse it as it grows.
                if header_fragments_size(h) > 2 * MAX_HEADER_LIST_SIZE:
                    error = RemoteProtocolError(_HEADER_LIST_TOO_LARGE + _UNDECODED)
            # Acknowledgements of SETTINGS and PING, resets of streams we forgot...
            self._dirty = self._dirty or has_output(self._h2)
        if error is not None:
            try:
                await self._flush_nowait(CLOSE_TIMEOUT)  # h2 queued a GOAWAY telling why
            except HTTPCoreError:  # pragma: no cover - the GOAWAY is a courtesy
                pass
            await self._fail(error)
        else:
            try:
                await self._flush_nowait(write_timeout)
            except HTTPCoreError as exc:
                # The acknowledgements could not go out: the connection is gone, but what
                # was read stands. A stream whose response is complete can still be read;
                # the others fail, as with any broken connection.
                await self._fail(
                    RemoteProtocolError(f"Writing to the server failed ({type(exc).__name__}: {exc})")
                )

    def _dispatch(self, events: list[h2.events.Event]) -> Exception | None:
        """Hand h2's events to their streams; under the lock. Returns a connection error."""
        streams = self._streams
        h = self._h2
        for event in events:
            kind = type(event)
            if kind in _STREAM_EVENTS:
                stream_id: int = event.stream_id  # type: ignore[attr-defined]
                stream = streams.get(stream_id)
                if stream is None:
                    # Forgotten without a reset (the server's GOAWAY refused it): its data
                    # still counts against the connection window.
                    if kind is _DataReceived:
                        h.acknowledge_received_data(
                            typing.cast(h2.events.DataReceived, event).flow_controlled_length, stream_id
                        )
                    continue
                if kind is _StreamReset:
                    self._stream_reset(stream, typing.cast(h2.events.StreamReset, event))
                else:
                    stream.answered = True
                    if kind is _DataReceived:
                        data_event = typing.cast(h2.events.DataReceived, event)
                        if not data_event.data:
                            # Padding, or an empty frame: nothing for the caller.
                            h.acknowledge_received_data(data_event.flow_controlled_length, stream_id)
                            continue
                        stream.chunks.append((data_event.data, data_event.flow_controlled_length))
                    elif kind is _ResponseReceived:
                        headers = typing.cast(h2.events.ResponseReceived, event).headers
                        if _header_list_size(headers) > MAX_HEADER_LIST_SIZE:
                            # Decoded whole (HPACK state intact): only this stream fails.
                            stream.error = stream.error or RemoteProtocolError(_HEADER_LIST_TOO_LARGE)
                        else:
                            stream.headers = headers
                    else:
                        stream.ended = True
                self._wake(stream)
            elif kind is _WindowUpdated:
                stream_id = typing.cast(h2.events.WindowUpdated, event).stream_id
                if stream_id == 0:
                    self._wake_senders()
                else:
                    stream = streams.get(stream_id)
                    if stream is not None and stream.wants_window:
                        self._wake(stream)
            elif kind is _RemoteSettingsChanged:
                changed = typing.cast(h2.events.RemoteSettingsChanged, event).changed_settings
                self._settings_known = True
                setting = changed.get(SettingCodes.MAX_CONCURRENT_STREAMS)
                if setting is not None:
                    self._max_streams = min(setting.new_value, MAX_CONCURRENT_STREAMS)
                if SettingCodes.INITIAL_WINDOW_SIZE in changed:
                    self._wake_senders()
            elif kind is _ConnectionTerminated:
                error = self._goaway_received(typing.cast(h2.events.ConnectionTerminated, event))
                if error is not None:
                    return error
            elif kind is _PingAckReceived:
                number = int.from_bytes(typing.cast(h2.events.PingAckReceived, event).ping_data or b"", "big")
                if self._pings_acked < number <= self._pings_sent:
                    self._pings_acked = number
            elif kind is _InformationalReceived:
                stream = streams.get(typing.cast(h2.events.InformationalResponseReceived, event).stream_id)
                if stream is not None:
                    stream.informational += 1
                    head = typing.cast(h2.events.InformationalResponseReceived, event).headers
                    refusal = None
                    if stream.informational > MAX_INFORMATIONAL:
                        refusal = RemoteProtocolError(
                            f"The server sent more than {MAX_INFORMATIONAL} informational (1xx) responses"
                        )
                    elif _header_list_size(head) > MAX_HEADER_LIST_SIZE:
                        refusal = RemoteProtocolError(_HEADER_LIST_TOO_LARGE)
                    if refusal is not None and stream.error is None:
                        stream.answered = True
                        stream.error = refusal
                        self._wake(stream)
            # Trailers, the server's pings, settings acks, priority and unknown frames:
            # nothing a waiting request needs.
        return None

    def _stream_reset(self, stream: _Stream, reset: h2.events.StreamReset) -> None:
        if reset.error_code == ErrorCodes.REFUSED_STREAM and not stream.answered:
            # Not processed (RFC 9113 section 8.7). Sent before we knew the server's stream
            # limit: it goes elsewhere; otherwise an idempotent request is sent again once.
            stream.error = (
                ConnectionNotAvailable()
                if stream.early
                else RemoteProtocolError(f"The server refused stream {reset.stream_id}")
            )
            return
        stream.answered = True
        if reset.error_code == ErrorCodes.NO_ERROR and stream.ended:
            stream.stop_sending = True  # a complete response: stop the upload, quietly
            return
        who = "The server" if reset.remote_reset else "h2, after a server protocol error,"
        stream.error = RemoteProtocolError(
            f"{who} reset stream {reset.stream_id} ({_error_name(reset.error_code)})"
        )

    def _wake(self, stream: _Stream) -> None:
        if not stream.event.is_set():
            self._parked.pop(stream, None)
            stream.event.set()

    def _wake_senders(self) -> None:
        for stream in self._streams.values():
            if stream.wants_window:
                self._wake(stream)

    def _goaway_received(self, event: h2.events.ConnectionTerminated) -> Exception | None:
        last_stream_id = event.last_stream_id or 0
        self._goaway = last_stream_id if self._goaway is None else min(self._goaway, last_stream_id)
        error_code = event.error_code or 0
        for stream_id, stream in self._streams.items():
            if stream_id > last_stream_id and stream.error is None:
                # Refused after answering contradicts itself: the request may have been
                # processed, so it fails rather than going to another connection.
                stream.error = (
                    RemoteProtocolError("The server refused the stream after responding")
                    if stream.answered
                    else ConnectionNotAvailable()
                )
                self._wake(stream)
        if error_code:
            return RemoteProtocolError(f"The server closed the connection ({_error_name(error_code)})")
        return None

    async def _fail(self, error: Exception) -> None:
        """The connection is broken: fail every stream in flight and close it."""
        with self._lock:
            self._error = self._error or error
            for stream in self._streams.values():
                if stream.ended:
                    stream.stop_sending = True  # its response is complete: let it be read
                else:
                    stream.error = stream.error or RemoteProtocolError(*error.args)
                self._wake(stream)
            self._parked.clear()
        await self._close_stream()

    async def _close_stream(self) -> None:
        if not self._stream_closed:
            self._stream_closed = True
            await self._stream.aclose()
