"""HTTP/2 over one network stream, with h2 as the protocol engine: many requests at once.

Theory of operation. Every request is a stream; all streams share one ``h2`` state
machine, guarded by a state lock (free under asyncio and trio, a real lock under threads) that is
never held across I/O. Nothing runs in the background: the tasks (or threads) of the
requests do all the work themselves.

- Writing: whoever changes the h2 state marks it dirty, then flushes. One writer at a
  time holds the write lock and writes everything h2 has queued, looping until nothing
  is left, so frames reach the wire in the order h2 produced them; it first lets the
  other ready tasks queue theirs, so a burst of requests costs one write. Uploads wait
  for the lock (that is their back-pressure); new streams, acknowledgements and resets
  only try it, because the holder will send their bytes before it lets go.
- Reading: a stream that needs something from the network (its response head, body
  data, or send window) becomes the reader if nobody is reading; otherwise it parks on
  its own event. The reader feeds what it reads to h2 and hands each event to the
  stream it concerns, waking that stream; it keeps reading until its own stream is
  satisfied, then wakes one parked stream to take over. So a response is read by one
  task and handed to another without a task per stream and without polling.
- Flow control: received data is credited back to the server only when the caller
  takes it, so a slow reader holds at most one stream window. Uploads are cut to the
  server's window and frame size, and wait for WINDOW_UPDATE when it is spent.
- Failures: a stream reset by the server fails that stream alone. A GOAWAY stops new
  streams; streams the server never processed fail with ``ConnectionNotAvailable`` (the
  pool retries them elsewhere) and the others may finish. A broken connection fails
  every stream in flight. A stream the caller abandons is reset with CANCEL and its
  unread data credited back, so its slot and its share of the window are freed.
"""

from __future__ import annotations

import collections
import time
import typing
from collections.abc import AsyncIterable, Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .. import _trace
from .._backends.base import AsyncNetworkStream
from .._config import MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, MAX_INFORMATIONAL, MAX_RESPONSE_HEADERS
from .._exceptions import (
    ConnectionNotAvailable,
    HTTPCoreError,
    LocalProtocolError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    StaleConnection,
    WriteError,
    WriteTimeout,
)
from .._library import current_async_library
from .._models import Origin, Request, Response
from .._synchronization import AsyncEvent, AsyncStateLock
from .interfaces import AsyncConnectionInterface, AsyncResponseStream
from .request_body import close_body

__all__ = ["AsyncHTTP2Connection", "AsyncHTTP2ResponseStream"]

READ_SIZE = 128 * 1024  # as HTTP/1.1: larger reads would cost page faults (mmap threshold)
# Until the server's SETTINGS arrive we assume the stream limit RFC 9113 recommends.
DEFAULT_MAX_STREAMS = 100
STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
MAX_FRAME_SIZE = 65536
_HEADER_LIST_TOO_LARGE = (
    f"The server sent a header list larger than {MAX_HEADER_LIST_SIZE} bytes,"
    " the SETTINGS_MAX_HEADER_LIST_SIZE we advertise"
)
# At most this much of an upload is queued in h2 before it is written: memory stays
# bounded whatever window the server grants.
WRITE_BATCH = 256 * 1024
# How long closing may wait to hand the server a GOAWAY.
CLOSE_TIMEOUT = 1.0
# An idle connection that turned readable has its data already: this only bounds the
# rare read that finds a TLS record but no application data in it.
CATCH_UP_TIMEOUT = 0.05

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
# Never sent on HTTP/2 (RFC 9113 section 8.2.2); Host becomes :authority.
_DROPPED = frozenset(
    {b"host", b"connection", b"transfer-encoding", b"keep-alive", b"upgrade", b"proxy-connection"}
)
_INITIAL_WINDOW = 65535

# h2 takes any GOAWAY as the end of the connection: it refuses every later frame and
# drops what it has queued to send. RFC 9113 lets the streams the server kept finish,
# so a received GOAWAY leaves our state machine open (we open no streams after it).
_TRANSITIONS = dict(h2.connection.H2ConnectionStateMachine._transitions)
_TRANSITIONS[(h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionInputs.RECV_GOAWAY)] = (
    None,
    h2.connection.ConnectionState.CLIENT_OPEN,
)


class _H2Connection(h2.connection.H2Connection):
    """h2's connection, minus the idea that a GOAWAY ends everything at once."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.state_machine._transitions = _TRANSITIONS
        self._sweep_at = 64

    def clear_outbound_data_buffer(self) -> None:
        """Keep what is queued: frames of the streams the server kept, and the HPACK
        state the server has seen, must reach it."""

    @property
    def open_outbound_streams(self) -> int:
        """h2 asks this before each new stream and walks every stream to answer, which
        makes a burst quadratic. We count streams ourselves and refuse before h2 would,
        so the walk (which also lets h2 drop closed streams) is done only now and then."""
        if len(self.streams) < self._sweep_at:
            return 0
        count = self._open_streams(1)
        self._sweep_at = 2 * len(self.streams) + 64
        return count


_DataReceived = h2.events.DataReceived
_ResponseReceived = h2.events.ResponseReceived
_InformationalReceived = h2.events.InformationalResponseReceived
_StreamEnded = h2.events.StreamEnded
_StreamReset = h2.events.StreamReset
_WindowUpdated = h2.events.WindowUpdated
_RemoteSettingsChanged = h2.events.RemoteSettingsChanged
_ConnectionTerminated = h2.events.ConnectionTerminated
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


def _has_head(stream: _Stream) -> bool:
    return stream.headers is not None


def _has_body_event(stream: _Stream) -> bool:
    return bool(stream.chunks) or stream.ended


def _error_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"


def _raise(error: Exception) -> typing.NoReturn:
    # A fresh instance each time: the same error may be raised in several tasks.
    raise type(error)(*error.args)


class AsyncHTTP2Connection(AsyncConnectionInterface):
    """One HTTP/2 connection carrying up to the server's stream limit of requests at once."""

    def __init__(
        self,
        origin: Origin,
        stream: AsyncNetworkStream,
        keepalive_expiry: float | None = None,
    ) -> None:
        self.origin = origin
        self._stream = stream
        self._keepalive_expiry = keepalive_expiry
        # Request heads are validated when built (``Request`` and ``_request_headers``), so
        # h2's own outbound checks would only repeat them; its normalising stays on.
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False
        )
        self._h2 = _H2Connection(config)
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
        self._started = False
        self._closed = False
        self._stream_closed = False
        self._error: Exception | None = None  # why the connection failed
        self._goaway: int | None = None  # last_stream_id of the server's GOAWAY
        self._requests = 0
        self._expire_at: float | None = None
        self._authority = origin.authority

    # -- one request ---------------------------------------------------------------

    async def handle_async_request(self, request: Request) -> Response:
        extensions = request.extensions
        timeouts = extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        write_timeout = timeouts.get("write")
        trace = extensions.get("trace")
        # An iterable body is not looked into before the stream is open: the pool may send
        # a request refused here (ConnectionNotAvailable) elsewhere, whole. An empty one
        # then ends the stream with an empty DATA frame, which is harmless in HTTP/2.
        content: typing.Any = request.content
        headers, end_stream = self._request_headers(request, content)
        with self._lock:
            # Under the lock: a sync stream's readiness check is not thread-safe.
            catch_up = not (self._streams or self._reading) and self._started and self._stream.is_readable()
            if catch_up:
                self._reading = True
        if catch_up:
            await self._catch_up(write_timeout)
        stream = _Stream(write_timeout, self._new_event())
        starting = not self._started
        try:
            with self._lock:
                self._open_stream(stream, headers, content, end_stream)
        except ConnectionNotAvailable:
            if self.is_closed():
                await self.aclose()  # say, a GOAWAY read while idle: nobody else will close it
            raise
        streamed = False  # a body taken from an iterator: it cannot be sent again
        stream_id = stream.stream_id
        step: str | None = None  # the traced step under way, for its ".failed" event
        info = {"request": request, "stream_id": stream_id}
        try:
            if trace is not None:
                if starting and self._started:  # this request queued the connection preface
                    await trace(_trace.HTTP2_SEND_CONNECTION_INIT + _trace.STARTED, {"request": request})
                    await trace(_trace.HTTP2_SEND_CONNECTION_INIT + _trace.COMPLETE, {"return_value": None})
                await trace(_trace.HTTP2_SEND_REQUEST_HEADERS + _trace.STARTED, info)
                step = _trace.HTTP2_SEND_REQUEST_HEADERS
            # No need to wait for a writer ahead of us: it sends our HEADERS along.
            await self._flush_nowait(write_timeout)
            if trace is not None:
                step = None
                await trace(_trace.HTTP2_SEND_REQUEST_HEADERS + _trace.COMPLETE, {"return_value": None})
                await trace(_trace.HTTP2_SEND_REQUEST_BODY + _trace.STARTED, info)
                step = _trace.HTTP2_SEND_REQUEST_BODY
            if not (end_stream or stream.sent_end):
                streamed = not isinstance(content, bytes)
                await self._send_body(stream, content, write_timeout)
            if trace is not None:
                step = None
                await trace(_trace.HTTP2_SEND_REQUEST_BODY + _trace.COMPLETE, {"return_value": None})
                await trace(_trace.HTTP2_RECEIVE_RESPONSE_HEADERS + _trace.STARTED, info)
                step = _trace.HTTP2_RECEIVE_RESPONSE_HEADERS
            await self._wait_for(stream, _has_head, read_timeout)
            # A head on a stream the server's GOAWAY refused is not to be trusted.
            if stream.headers is None or isinstance(stream.error, ConnectionNotAvailable):
                assert stream.error is not None
                _raise(stream.error)
            status, response_headers = self._parse_head(stream.headers)
            if trace is not None:
                step = None
                head = (status, response_headers)
                await trace(_trace.HTTP2_RECEIVE_RESPONSE_HEADERS + _trace.COMPLETE, {"return_value": head})
        except BaseException as exc:
            await self._forget(stream)
            if step is not None and trace is not None:
                await trace(step + _trace.FAILED, {"exception": exc})
            if isinstance(stream.error, ConnectionNotAvailable) or isinstance(exc, ConnectionNotAvailable):
                if streamed:
                    # Unprocessed, so safe to send again, but its body was consumed.
                    raise RemoteProtocolError(
                        "The server refused the stream unprocessed (GOAWAY) after part of its"
                        " streamed body was sent; a streamed body cannot be sent again"
                    ) from None
                raise ConnectionNotAvailable() from None
            if not stream.answered and isinstance(exc, (ReadError, WriteError, RemoteProtocolError)):
                # The connection failed before the server said anything about this
                # stream: the pool may send an idempotent request again.
                raise StaleConnection(f"{exc} (before any response on stream {stream.stream_id})") from exc
            raise
        return Response._from_stream(
            status,
            response_headers,
            AsyncHTTP2ResponseStream(self, stream, read_timeout, trace, request),
            {
                "http_version": b"HTTP/2",
                "reason_phrase": b"",
                "network_stream": self._stream,
                "stream_id": stream_id,
            },
        )

    def _request_headers(
        self, request: Request, content: typing.Any
    ) -> tuple[list[tuple[bytes, bytes]], bool]:
        """The header block (pseudo-headers first, names lower-cased, connection-specific
        fields dropped) and whether the headers end the stream (no ``content``)."""
        authority = None
        fields: list[tuple[bytes, bytes]] = []
        has_length = False
        for name, value in request.headers:
            name = name.lower()
            if name in _DROPPED:
                if name == b"host" and authority is None:
                    authority = value
                continue
            if name == b"te" and value.lower() != b"trailers":
                continue
            if name == b"content-length":
                has_length = True
            fields.append((name, value))
        if isinstance(content, bytes):
            if not has_length and (content or request.method in _BODY_METHODS):
                fields.append((b"content-length", b"%d" % len(content)))
            end_stream = not content
        else:
            end_stream = content is None
        url = request.url
        return (
            [
                (b":method", request.method),
                (b":authority", authority or self._authority),
                (b":scheme", url.scheme),
                (b":path", url.target),
                *fields,
            ],
            end_stream,
        )

    def _open_stream(
        self, stream: _Stream, headers: list[tuple[bytes, bytes]], content: typing.Any, end_stream: bool
    ) -> None:
        """Queue the HEADERS of a new stream (and a small body with it); under the lock."""
        if self._closed or self._error is not None or self._goaway is not None:
            raise ConnectionNotAvailable()
        if len(self._streams) >= self._max_streams:
            raise ConnectionNotAvailable()
        h = self._h2
        if not self._started:
            self._start()
        stream_id = h.get_next_available_stream_id()
        try:
            h.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.TooManyStreamsError:  # pragma: no cover - we count streams first
            raise ConnectionNotAvailable() from None
        except h2.exceptions.ProtocolError as exc:  # pragma: no cover - the head was checked
            raise LocalProtocolError(f"Invalid HTTP/2 request: {exc}") from exc
        stream.stream_id = stream_id
        stream.sent_end = end_stream
        stream.early = not self._settings_known
        self._streams[stream_id] = stream
        self._requests += 1
        self._expire_at = None
        self._dirty = True
        if (
            not end_stream
            and isinstance(content, bytes)
            and len(content) <= min(h.max_outbound_frame_size, h.local_flow_control_window(stream_id))
        ):
            # The whole body fits one frame: it goes out in the same write as the head.
            h.send_data(stream_id, content, end_stream=True)
            stream.sent_end = True

    def _start(self) -> None:
        """Queue the connection preface: our SETTINGS and a larger connection window."""
        h = self._h2
        h.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_CONCURRENT_STREAMS: DEFAULT_MAX_STREAMS,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        # A client has no business announcing extended CONNECT (RFC 8441).
        del h.local_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL]
        # Settings made at construction take effect at once: mirror them in h2's state.
        h.max_inbound_frame_size = MAX_FRAME_SIZE
        h.decoder.max_header_list_size = MAX_HEADER_LIST_SIZE
        h.initiate_connection()
        h.increment_flow_control_window(CONNECTION_WINDOW - _INITIAL_WINDOW)
        self._started = True
        self._dirty = True

    def _parse_head(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
        # h2 has checked that a response head is :status and then regular fields only.
        if len(headers) > MAX_RESPONSE_HEADERS + 1:
            raise RemoteProtocolError(f"The response head has more than {MAX_RESPONSE_HEADERS} header fields")
        status = headers[0][1]
        try:
            code = int(status)
        except ValueError:
            raise RemoteProtocolError(f"Invalid :status in the HTTP/2 response: {status!r}") from None
        return code, [(bytes(name), bytes(value)) for name, value in headers[1:]]

    # -- the request body ----------------------------------------------------------

    async def _send_body(self, stream: _Stream, content: typing.Any, timeout: float | None) -> None:
        if isinstance(content, bytes):
            sending = await self._send_data(stream, content, timeout)
        else:
            sending = await self._send_chunks(stream, content, timeout)
        if sending:
            with self._lock:
                self._check(stream)
                if stream.stop_sending:  # reset with NO_ERROR after a complete response
                    return
                self._h2.end_stream(stream.stream_id)
                stream.sent_end = True
                self._dirty = True
            await self._flush(timeout)

    async def _send_chunks(self, stream: _Stream, content: typing.Any, timeout: float | None) -> bool:
        """An iterable body, chunk by chunk; False once the server wants no more of it.
        The iterator made here from the body is closed however the upload ends."""
        if isinstance(content, AsyncIterable):
            iterator = content.__aiter__()
            try:
                async for chunk in iterator:
                    if not await self._send_data(stream, chunk, timeout):
                        return False
            finally:
                if iterator is not content:  # the caller's own generator stays theirs
                    await close_body(iterator)
        else:
            for chunk in content:
                if not await self._send_data(stream, chunk, timeout):
                    return False
        return True

    async def _send_data(self, stream: _Stream, data: bytes, timeout: float | None) -> bool:
        """Send one chunk within the flow-control windows; False once the server wants
        no more of the body (it answered and ended or reset the stream)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"Request body chunks must be bytes, not {type(data).__name__}")
        view = memoryview(data)
        size = len(view)
        offset = 0
        h = self._h2
        stream_id = stream.stream_id
        while offset < size:
            with self._lock:
                self._check(stream)
                if stream.stop_sending:
                    return False
                window = h.local_flow_control_window(stream_id)
                if window > 0:
                    frame_size = h.max_outbound_frame_size
                    end = offset + min(window, size - offset, WRITE_BATCH)
                    while offset < end:
                        step = min(frame_size, end - offset)
                        h.send_data(stream_id, view[offset : offset + step])
                        offset += step
                    self._dirty = True
                elif stream.ended:
                    return False
                else:
                    stream.wants_window = True
            if window > 0:
                await self._flush(timeout)
            else:
                try:
                    await self._wait_for(stream, self._can_send, timeout, WriteTimeout)
                finally:
                    stream.wants_window = False
        return True

    def _can_send(self, stream: _Stream) -> bool:
        if stream.stop_sending or stream.ended or stream.error is not None:
            return True
        return self._h2.local_flow_control_window(stream.stream_id) > 0

    def _check(self, stream: _Stream) -> None:
        if stream.error is not None:
            _raise(stream.error)

    # -- the response body ---------------------------------------------------------

    async def _receive_body_chunk(self, stream: _Stream, timeout: float | None) -> bytes | None:
        """The next piece of the body (all that has arrived), or None at its end."""
        while True:
            with self._lock:
                chunks = stream.chunks
                if chunks:
                    if len(chunks) == 1:
                        data, credit = chunks.popleft()
                    else:
                        data = b"".join([chunk for chunk, _ in chunks])
                        credit = sum([length for _, length in chunks])
                        chunks.clear()
                    # Credit the server for what the caller now has (unless it is gone);
                    # h2 sends a WINDOW_UPDATE once enough is owed.
                    credited = False
                    if self._error is None:
                        self._h2.acknowledge_received_data(credit, stream.stream_id)
                        credited = self._dirty = self._h2_has_output()
                    break
                if stream.ended:
                    return None
                if stream.error is not None:
                    error = stream.error
                    if isinstance(error, ConnectionNotAvailable):
                        error = RemoteProtocolError("The server refused the stream after responding")
                    _raise(error)
            await self._wait_for(stream, _has_body_event, timeout)
        if credited:
            await self._flush_nowait(stream.write_timeout)
        return data

    async def _forget(self, stream: _Stream) -> None:
        """The caller is done with this stream: free its slot, credit back what it left
        unread, and reset it if it is still open on either side."""
        with self._lock:
            self._streams.pop(stream.stream_id, None)
            self._parked.pop(stream, None)
            h = self._h2
            healthy = self._error is None and not self._closed
            if healthy:
                credit = sum([length for _, length in stream.chunks])
                if credit:
                    h.acknowledge_received_data(credit, stream.stream_id)
                    self._dirty = True
                if not (stream.ended and stream.sent_end) and not isinstance(
                    stream.error, ConnectionNotAvailable
                ):
                    try:
                        h.reset_stream(stream.stream_id, ErrorCodes.CANCEL)
                    except h2.exceptions.StreamClosedError:
                        pass
                    else:
                        self._dirty = True
            stream.chunks.clear()
            idle = not self._streams
            if idle and self._keepalive_expiry is not None:
                self._expire_at = time.monotonic() + self._keepalive_expiry
            close = idle and (self._goaway is not None or not healthy)
        try:
            if healthy:
                await self._flush_nowait(stream.write_timeout)
        except HTTPCoreError:
            pass  # the connection failed; the streams still in flight will hear of it
        finally:
            if close:
                await self.aclose()

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
        if nobody is reading, else park until the reader wakes us."""
        deadline = None if timeout is None else time.monotonic() + timeout
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
            remaining = None if deadline is None else deadline - time.monotonic()
            if lead:
                await self._read_until(stream, ready, deadline, timeout_error)
                continue
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
                with self._lock:
                    if stream.error is not None or ready(stream):  # pragma: no cover - a near miss
                        return
                raise timeout_error(f"Timed out waiting for the server (stream {stream.stream_id})")

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

    def _h2_has_output(self) -> bool:
        """Whether h2 queued bytes to send; under the lock. Peeks at h2's buffer: taking
        it (``data_to_send``) would cost a copy each time a read queued nothing."""
        return bool(self._h2._data_to_send)

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
            h = self._h2
            error: Exception | None
            try:
                events = h.receive_data(data)
            except h2.exceptions.DenialOfServiceError:  # hpack's bound on a decoded header list
                error = RemoteProtocolError(_HEADER_LIST_TOO_LARGE)
            except h2.exceptions.ProtocolError as exc:
                error = RemoteProtocolError(f"The server broke the HTTP/2 protocol: {exc}")
            else:
                error = self._dispatch(events)
                # h2 checks a frame's size only once all of it has arrived: a server that
                # is not speaking HTTP/2 would have us buffer up to 16 MiB of garbage.
                pending = h.incoming_buffer._data
                if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > h.max_inbound_frame_size:
                    if pending.startswith(b"HTTP/"):
                        reason = "the server answered in HTTP/1.x, not HTTP/2"
                    else:
                        reason = "a frame is larger than the size we allow"
                    error = RemoteProtocolError(f"The server broke the HTTP/2 protocol: {reason}")
                # h2 holds a header block's fragments until its last one (up to 64 frames
                # of MAX_FRAME_SIZE) before hpack measures it: refuse it as it grows.
                fragments = getattr(h.incoming_buffer, "_headers_buffer", None)
                if fragments and sum([len(frame.data) for frame in fragments]) > 2 * MAX_HEADER_LIST_SIZE:
                    error = RemoteProtocolError(_HEADER_LIST_TOO_LARGE)
            # Acknowledgements of SETTINGS and PING, resets of streams we forgot...
            self._dirty = self._dirty or self._h2_has_output()
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
                        stream.headers = typing.cast(h2.events.ResponseReceived, event).headers
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
            elif kind is _InformationalReceived:
                stream = streams.get(typing.cast(h2.events.InformationalResponseReceived, event).stream_id)
                if stream is not None:
                    stream.informational += 1
                    if stream.informational > MAX_INFORMATIONAL and stream.error is None:
                        stream.answered = True
                        stream.error = RemoteProtocolError(
                            f"The server sent more than {MAX_INFORMATIONAL} informational (1xx) responses"
                        )
                        self._wake(stream)
            # Trailers, pings, settings acks, priority and unknown frames: nothing a
            # waiting request needs.
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
                stream.error = ConnectionNotAvailable()
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

    # -- what the pool asks --------------------------------------------------------

    def capacity(self) -> int:
        if self._closed or self._error is not None or self._goaway is not None:
            return 0
        return self._max_streams

    def has_expired(self) -> bool:
        if self._closed or self._error is not None or self._goaway is not None:
            return True
        if self._streams:
            return False
        # Whatever an idle connection received is read before its next stream opens.
        return self._expire_at is not None and time.monotonic() > self._expire_at

    def is_closed(self) -> bool:
        return self._closed or self._error is not None or (self._goaway is not None and not self._streams)

    async def aclose(self) -> None:
        """Close the connection, telling the server with a GOAWAY when it is healthy."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for stream in self._streams.values():
                if stream.ended:
                    stream.stop_sending = True
                else:
                    stream.error = stream.error or ReadError("The connection was closed")
                self._wake(stream)
            goodbye = self._started and self._error is None and not self._stream_closed
            if goodbye:
                try:
                    self._h2.close_connection()
                except h2.exceptions.ProtocolError:  # pragma: no cover - already closed by a GOAWAY
                    goodbye = False
                self._dirty = True
        try:
            if goodbye:
                await self._flush_nowait(CLOSE_TIMEOUT)
        except HTTPCoreError:
            pass
        finally:
            await self._close_stream()

    def __repr__(self) -> str:
        state = "CLOSED" if self.is_closed() else "ACTIVE" if self._streams else "IDLE"
        return (
            f"<{type(self).__name__} [{self.origin}, {state}, streams={len(self._streams)}, "
            f"requests={self._requests}]>"
        )


class AsyncHTTP2ResponseStream(AsyncResponseStream):
    """A response body handed over as it arrives; closing it (or reading to the end)
    frees the stream, resetting it if the server was still sending."""

    __slots__ = ("_body_started", "_connection", "_request", "_stream", "_timeout", "_trace")

    def __init__(
        self,
        connection: AsyncHTTP2Connection,
        stream: _Stream,
        timeout: float | None,
        trace: typing.Any,
        request: Request,
    ) -> None:
        self._connection = connection
        self._stream = stream
        self._timeout = timeout
        self._trace = trace
        self._request = request
        self._body_started = False
        self._closed = False

    async def _receive(self) -> bytes | None:
        if self._trace is not None:
            return await self._receive_traced(self._trace)
        return await self._connection._receive_body_chunk(self._stream, self._timeout)

    async def _receive_traced(self, trace: typing.Any) -> bytes | None:
        # On any error the base class closes this stream (resetting it if need be).
        step = _trace.HTTP2_RECEIVE_RESPONSE_BODY
        if not self._body_started:
            self._body_started = True
            await trace(
                step + _trace.STARTED, {"request": self._request, "stream_id": self._stream.stream_id}
            )
        try:
            chunk = await self._connection._receive_body_chunk(self._stream, self._timeout)
        except BaseException as exc:
            await trace(step + _trace.FAILED, {"exception": exc})
            raise
        if chunk is None:
            await trace(step + _trace.COMPLETE, {"return_value": None})
        return chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            trace = self._trace
            if trace is None:
                await self._connection._forget(self._stream)
                return
            try:
                await trace(
                    _trace.HTTP2_RESPONSE_CLOSED + _trace.STARTED, {"stream_id": self._stream.stream_id}
                )
            finally:
                await self._connection._forget(self._stream)
            await trace(_trace.HTTP2_RESPONSE_CLOSED + _trace.COMPLETE, {"return_value": None})
