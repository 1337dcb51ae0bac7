"""HTTP/2 over one network stream, with h2 as the protocol engine: many requests at once.

Theory of operation. Every request is a stream on one shared wire (``http2_wire.py``:
the h2 state machine, one writer and one reader at a time, events handed to the stream
they concern). This module is the request side and what the pool asks:

- A request opens its stream under the server's stream limit, sends its head (and its
  body, cut to the flow-control windows, waiting for WINDOW_UPDATE when they are spent),
  then waits for its response head; the body is handed to the caller as it arrives.
- Flow control: received data is credited back to the server only when the caller
  takes it, so a slow reader holds at most one stream window.
- Failures: a stream reset by the server fails that stream alone. A GOAWAY stops new
  streams; streams the server never processed fail with ``ConnectionNotAvailable`` (the
  pool retries them elsewhere, unless their streamed body was already consumed) and the
  others may finish. A broken connection fails every stream in flight. A read wait
  on a quiet connection PINGs it before its deadline; until the ACK the connection
  takes no new streams, and if nothing answers by the deadline it fails
  (``http2_wire.py``). A stream the
  caller abandons is reset with CANCEL and its unread data credited back, so its slot
  and its share of the window are freed.
"""

from __future__ import annotations

import time
import typing
from collections.abc import AsyncIterable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .. import _trace
from .._backends.base import AsyncNetworkStream
from .._config import MAX_HEADER_LIST_DECODED, MAX_HEADER_LIST_SIZE, MAX_RESPONSE_HEADERS
from .._exceptions import (
    ConnectionNotAvailable,
    HTTPCoreError,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
    StaleConnection,
    WriteError,
    WriteTimeout,
)
from .._h2_shortcuts import has_output
from .._models import Origin, Request, Response
from .http2_wire import (
    CLOSE_TIMEOUT,
    DEFAULT_MAX_STREAMS,
    MAX_FRAME_SIZE,
    AsyncHTTP2Wire,
    _Stream,
)
from .interfaces import AsyncConnectionInterface, AsyncResponseStream
from .request_body import close_body

__all__ = ["AsyncHTTP2Connection", "AsyncHTTP2ResponseStream"]

STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
# At most this much of an upload is queued in h2 before it is written: memory stays
# bounded whatever window the server grants.
WRITE_BATCH = 256 * 1024

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
# Never sent on HTTP/2 (RFC 9113 section 8.2.2); Host becomes :authority.
_DROPPED = frozenset(
    {b"host", b"connection", b"transfer-encoding", b"keep-alive", b"upgrade", b"proxy-connection"}
)
_INITIAL_WINDOW = 65535


def _has_head(stream: _Stream) -> bool:
    return stream.headers is not None


def _has_body_event(stream: _Stream) -> bool:
    return bool(stream.chunks) or stream.ended


def _raise(error: Exception) -> typing.NoReturn:
    # A fresh instance each time: the same error may be raised in several tasks.
    raise type(error)(*error.args)


class AsyncHTTP2Connection(AsyncHTTP2Wire, AsyncConnectionInterface):
    """One HTTP/2 connection carrying up to the server's stream limit of requests at once."""

    def __init__(
        self,
        origin: Origin,
        stream: AsyncNetworkStream,
        keepalive_expiry: float | None = None,
    ) -> None:
        super().__init__(stream)
        self.origin = origin
        self._keepalive_expiry = keepalive_expiry
        self._started = False
        self._closed = False
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
            # Refused while unanswered, the request goes elsewhere: a head that came
            # after the refusal is not to be trusted.
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
        if len(self._streams) >= self._max_streams or self._pings_acked < self._pings_sent:
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
        # hpack decodes past our limit, up to its own bound, so that a block over the
        # limit fails only its stream (the wire checks each decoded head).
        h.max_inbound_frame_size = MAX_FRAME_SIZE
        h.decoder.max_header_list_size = MAX_HEADER_LIST_DECODED
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
                        credited = self._dirty = has_output(self._h2)
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
            # Idle with its PING unanswered: nobody would read the ACK, so it goes.
            close = idle and (self._goaway is not None or not healthy or self._pings_acked < self._pings_sent)
        try:
            if healthy:
                await self._flush_nowait(stream.write_timeout)
        except HTTPCoreError:
            pass  # the connection failed; the streams still in flight will hear of it
        finally:
            if close:
                await self.aclose()

    # -- what the pool asks --------------------------------------------------------

    def capacity(self) -> int:
        if self._closed or self._error is not None or self._goaway is not None:
            return 0
        if self._pings_acked < self._pings_sent:
            return 0  # suspect until the server answers our PING (http2_wire.py)
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
