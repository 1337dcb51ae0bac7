"""HTTP/1.1 over one network stream, with h11 as the protocol engine.

Theory of operation: a connection is IDLE, ACTIVE (one request in flight) or CLOSED.
Sending builds the request head once, adds Host and the body framing when the caller did
not (Content-Length for bytes, chunked for iterables), and writes a small request in a
single call. The response head is read event by event from h11. A body that arrived
whole with the head comes back with the response at once; any other is handed to the
caller as a stream that pulls one chunk per step, so memory is bounded by the backend's
buffer, not by the body. A body framed by Content-Length is counted past h11's buffer
(h11 would copy it three times) while h11 still frames and ends it; chunked and
close-delimited bodies go through h11. When the body ends the h11 cycle restarts and the
connection is IDLE again, unless either side asked to close, the body was abandoned,
or the server sent bytes past the end of the response: then it is CLOSED and can never
carry another request, so no response can be handed to the wrong request.

An exchange h11 has completed before with byte-identical heads is replayed without it
(``_h11_replay``): the request goes out as h11 wrote it, and when the first read brings
a known response head with exactly its body, the response h11 made of it comes back and
the connection is IDLE, as h11 would have left it. Anything else catches h11 up with the
request and lets it read the response as above.
"""

from __future__ import annotations

import enum
import time
import typing
from collections.abc import AsyncIterable

import h11

from .. import _trace
from .._backends.base import AsyncNetworkStream
from .._config import MAX_INFORMATIONAL, MAX_RESPONSE_HEAD_SIZE, MAX_RESPONSE_HEADERS, MAX_RESPONSE_LINE
from .._exceptions import (
    ConnectionNotAvailable,
    HTTPCoreError,
    ReadError,
    RemoteProtocolError,
    StaleConnection,
    WriteError,
)
from .._h11_checks import check_head, has_both_framings, map_h11_error
from .._h11_replay import Cycle, RequestHead, request_head
from .._h11_shortcuts import (
    CHUNKED,
    LENGTH,
    UNKNOWN,
    body_framing,
    count_body_chunk,
    count_body_received,
    install_head_cache,
    take_counted_body,
)
from .._models import Origin, Request, Response
from .http11_streams import AsyncHTTP11ResponseStream, AsyncUpgradedStream
from .interfaces import AsyncConnectionInterface
from .request_body import close_body, first_chunk
from .tracing import traced

__all__ = ["TRUNCATED_HEAD", "AsyncHTTP11Connection"]

READ_SIZE = 64 * 1024
# The server closed after part of a response head: what a client built on a lenient
# parser reports as a broken body rather than as no response (see contrib.requests).
TRUNCATED_HEAD = "Server disconnected in the middle of the response head."
# A body this small is sent in the same write as the request head.
COALESCE_LIMIT = 64 * 1024
# A response head longer than this is never replayed (see _h11_replay).
REPLAYED_HEAD_MAX = 4096
# A head smaller than this cannot break a limit that h11 does not check itself: only a
# larger one (or one read with part of its body) is measured. Each header line takes at
# least 4 bytes ("a:" and CRLF).
_HEAD_CHECKED_ABOVE = min(MAX_RESPONSE_LINE, 4 * MAX_RESPONSE_HEADERS)

_VERSIONS = {b"1.1": b"HTTP/1.1", b"1.0": b"HTTP/1.0"}
_END_OF_MESSAGE = h11.EndOfMessage()  # events are immutable: one serves every request
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_FRAMING = {b"host": 1, b"content-length": 2, b"transfer-encoding": 4}


async def _looked_at(request: Request) -> typing.Any:
    """The request's body, an iterable one looked into (``first_chunk``): b"" when it
    yields nothing, which is then recorded on the request (safe to send again)."""
    content: typing.Any = request.content
    if content is not None and type(content) is not bytes:
        content = await first_chunk(content)
        if type(content) is bytes:
            request.content = content
    return content


def _replayable(record: RequestHead, content: typing.Any) -> bool:
    """Whether the request may go out as h11 wrote it before (see ``_h11_replay``): h11
    sent its head with a body of the same length (a streamed one: framed by
    Content-Length, counted as it goes)."""
    if content is None:
        return record.replayable(0)
    if type(content) is bytes:
        return len(content) <= COALESCE_LIMIT and record.replayable(len(content))
    return record.replayable(-1)


class _State(enum.Enum):
    IDLE = 0
    ACTIVE = 1
    CLOSED = 2


class AsyncHTTP11Connection(AsyncConnectionInterface):
    """One HTTP/1.1 connection: a request at a time, kept alive between them."""

    def __init__(
        self,
        origin: Origin,
        stream: AsyncNetworkStream,
        keepalive_expiry: float | None = None,
    ) -> None:
        self.origin = origin
        self._stream = stream
        self._keepalive_expiry = keepalive_expiry
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD_SIZE)
        self._state = _State.IDLE
        self._expire_at: float | None = None
        self._requests = 0
        self._got_response_bytes = False
        self._pending: memoryview | None = None
        self._received = 0  # bytes read so far, to bound a response head
        self._must_close = False  # the response's framing was ambiguous: never reuse
        self._host_header = origin.authority
        self._head_start = 0  # self._received before the response head was read
        # The request going out without h11 (see _h11_replay), the body bytes sent with
        # it so far, and whether the body is done: what h11 must hear if it takes over.
        self._replaying: RequestHead | None = None
        self._body_sent = 0
        self._body_ended = False
        # An exchange that may be remembered for replay once h11 has completed it: the
        # request's record, the head first read, the body bytes after it, _received then.
        self._to_remember: tuple[RequestHead, bytes, int, int] | None = None

    async def handle_async_request(self, request: Request) -> Response:
        if self._state is not _State.IDLE:
            raise ConnectionNotAvailable()
        self._state = _State.ACTIVE
        self._expire_at = None
        reused = self._requests > 0
        self._requests += 1
        self._got_response_bytes = False
        self._must_close = False
        self._replaying = None
        self._to_remember = None
        self._head_start = self._received
        extensions = request.extensions
        timeouts = extensions.get("timeout") or {}
        trace = extensions.get("trace")
        try:
            send_error: WriteError | None = None
            try:
                if trace is not None:
                    await self._send_request_traced(request, timeouts.get("write"), trace)
                else:
                    content = await _looked_at(request)
                    record = self._request_head(request, content)
                    if _replayable(record, content):
                        await self._send_replayed(record, content, timeouts.get("write"))
                    else:
                        await self._send_request(record, content, timeouts.get("write"))
            except WriteError as exc:
                # The server may have answered early and closed (a 413 or 401 before the
                # upload finished): what it sent is the response the caller needs.
                send_error = exc
            try:
                if self._replaying is not None:
                    response = await self._receive_replayed(self._replaying, timeouts.get("read"))
                    if response is not None:
                        return response
                    event = await self._receive_response_head(timeouts.get("read"), first_read=False)
                elif trace is None:
                    event = await self._receive_response_head(timeouts.get("read"))
                else:
                    event = await self._receive_response_head_traced(request, timeouts.get("read"), trace)
            except HTTPCoreError:
                if send_error is not None:
                    raise send_error from None
                raise
            return await self._response(event, timeouts.get("read"), trace, request)
        except BaseException as exc:
            # Whatever ends the exchange before the caller has its response (an error, or
            # a cancellation in a trace callback) closes the connection: it is mid-cycle.
            await self._close()
            if trace is not None:
                await trace(_trace.HTTP11_RESPONSE_CLOSED + _trace.STARTED, {})
                await trace(_trace.HTTP11_RESPONSE_CLOSED + _trace.COMPLETE, {"return_value": None})
            if (
                reused
                and not self._got_response_bytes
                and isinstance(exc, (ReadError, WriteError, RemoteProtocolError))
            ):
                raise StaleConnection(
                    "The server closed the keep-alive connection before responding"
                    f" ({type(exc).__name__}: {exc})"
                ) from exc
            if isinstance(exc, h11.ProtocolError):
                raise map_h11_error(exc, in_body=self._h11.their_state is h11.SEND_BODY) from exc
            raise

    async def _send_replayed(self, record: RequestHead, content: typing.Any, timeout: float | None) -> None:
        """The request as h11 wrote it before; a streamed body is counted against the
        length h11 framed it by, and h11 takes over to refuse one that does not fit."""
        self._replaying = record
        if content is None or type(content) is bytes:
            self._body_sent = len(content) if content else 0
            self._body_ended = True
            await self._stream.write(record.message(content), timeout)
            return
        self._body_ended = False  # _send_body_chunks counts the body from 0
        try:
            await self._stream.write(record.message(None), timeout)
            await self._send_body_chunks(content, timeout)
        finally:
            await close_body(content)

    def _catch_up(self) -> None:
        """h11 hears of the replayed request as far as it went, and takes over."""
        record = self._replaying
        assert record is not None
        self._replaying = None
        record.catch_up(self._h11, self._body_sent, self._body_ended)

    async def _receive_replayed(self, record: RequestHead, timeout: float | None) -> Response | None:
        """The response, when the first read brings a whole exchange h11 completed before
        with this request head; else None, with h11 told of the request and given what
        was read, to read the response its own way."""
        data = await self._read(timeout)
        h = self._h11
        if data:
            if type(data) is not bytes:  # a backend of the caller's may hand back any bytes-like
                data = bytes(data)
            end = data.find(b"\r\n\r\n", 0, REPLAYED_HEAD_MAX) + 4
            if end > 4:
                head = data[:end]
                cycle = record.cycles.get(head)
                if (
                    cycle is not None
                    and self._body_ended  # else h11 would close after the response
                    and len(data) - end == cycle.body_length
                    and h.their_http_version is not None
                ):
                    return self._replayed(cycle, data[end:])
                self._to_remember = (record, head, len(data) - end, self._received)
        self._catch_up()
        self._feed(data)
        return None

    def _replayed(self, cycle: Cycle, body: bytes) -> Response:
        """The response of a replayed exchange, the connection idle again as h11 would
        have left it."""
        self._state = _State.IDLE
        if self._keepalive_expiry is not None:
            self._expire_at = time.monotonic() + self._keepalive_expiry
        event = cycle.event
        extensions = {
            "http_version": cycle.version,
            "reason_phrase": event.reason,
            "network_stream": self._stream,
        }
        return Response._from_stream(event.status_code, event.headers.raw_items(), None, extensions, body)

    async def _response(
        self,
        event: h11.Response | h11.InformationalResponse,
        timeout: float | None,
        trace: typing.Any,
        request: Request,
    ) -> Response:
        """The response for a head just received, with its body if that came along."""
        http_version = _VERSIONS.get(event.http_version) or b"HTTP/" + event.http_version
        raw_headers = event.headers.raw_items()
        if trace is not None:
            head = (http_version, event.status_code, event.reason, raw_headers)
            await trace(_trace.HTTP11_RECEIVE_RESPONSE_HEADERS + _trace.COMPLETE, {"return_value": head})
        response_extensions = {
            "http_version": http_version,
            "reason_phrase": event.reason,
            "network_stream": self._stream,
        }
        if self._h11.their_state is h11.SWITCHED_PROTOCOL:
            # 101 to an Upgrade, or 2xx to CONNECT: the stream now belongs to the caller,
            # with whatever bytes came after the head; the response itself has no body.
            response_extensions["network_stream"] = AsyncUpgradedStream(self._stream, self._unread())
            stream = AsyncHTTP11ResponseStream(self, timeout, trace, b"", request)
            return Response._from_stream(event.status_code, raw_headers, stream, response_extensions)
        # Both Content-Length and Transfer-Encoding: h11 frames the body by the chunks
        # (RFC 9112 6.3), but a peer or proxy that framed it by the length would not
        # agree on where the next response starts, so the connection is not reused.
        # Only a chunked body can have both, so only then are the headers looked at.
        framing = body_framing(self._h11)
        self._must_close = framing in (CHUNKED, UNKNOWN) and has_both_framings(raw_headers)
        if trace is None:
            body, complete = self._buffered_body()
            if complete:
                # The whole body came with the head: the connection is done with this
                # response already, and the caller gets it with no stream to pull.
                await self._response_closed()
                replay = self._to_remember
                if (
                    replay is not None
                    and self._state is _State.IDLE
                    and replay[3] == self._received  # all in the first read
                    and framing == LENGTH
                    and type(event) is h11.Response
                ):
                    replay[0].remember(replay[1], event, replay[2], http_version)
                return Response._from_stream(event.status_code, raw_headers, None, response_extensions, body)
        else:
            body = b""  # traced: the body is read, and the response closed, when the caller does
        return Response._from_stream(
            event.status_code,
            raw_headers,
            AsyncHTTP11ResponseStream(self, timeout, trace, body, request),
            response_extensions,
        )

    def _buffered_body(self) -> tuple[bytes, bool]:
        """The body bytes h11 can produce from what was already read, and whether the
        body ended with them; no I/O."""
        h = self._h11
        whole = take_counted_body(h)  # then h11 only ends the message
        chunks: list[bytes] = [] if whole is None else [whole]
        while True:
            event = h.next_event()
            if type(event) is h11.Data:
                chunks.append(event.data)
            elif type(event) is h11.EndOfMessage:
                complete = True
                break
            elif event is h11.NEED_DATA:
                complete = False
                break
            else:
                raise RemoteProtocolError(f"Unexpected {type(event).__name__} in the response body")
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return (body if type(body) is bytes else bytes(body)), complete

    async def _send_request(self, record: RequestHead, content: typing.Any, timeout: float | None) -> None:
        h = self._h11
        head = h.send(record.event)
        assert head is not None
        if content is None or isinstance(content, bytes):
            if content and len(content) > COALESCE_LIMIT:
                body = h.send(h11.Data(data=content))
                end = h.send(_END_OF_MESSAGE)
                await self._stream.write(head, timeout)
                await self._stream.write(body, timeout)
                if end:
                    await self._stream.write(end, timeout)
                return
            wire = head
            if content:
                head += h.send(h11.Data(data=content))
            end = h.send(_END_OF_MESSAGE)
            if end:
                head += end  # the chunked framing's last chunk: the body was not sent as it is
            else:
                record.sent(wire, len(content) if content else 0)
            await self._stream.write(head, timeout)
            return
        try:
            await self._stream.write(head, timeout)
            if await self._send_body_chunks(content, timeout):
                record.sent(head, self._body_sent)  # framed by Content-Length: sent as it came
        finally:
            await close_body(content)  # however the upload ended

    async def _send_request_traced(self, request: Request, timeout: float | None, trace: typing.Any) -> None:
        info = {"request": request}
        content = await _looked_at(request)
        step = _trace.HTTP11_SEND_REQUEST_HEADERS
        try:
            await traced(trace, step, info, self._send_head, request, content, timeout)
            await traced(trace, _trace.HTTP11_SEND_REQUEST_BODY, info, self._send_body, content, timeout)
        finally:
            await close_body(content)

    async def _send_head(self, request: Request, content: typing.Any, timeout: float | None) -> None:
        """The request head alone (traced requests send head and body as two steps)."""
        await self._stream.write(self._encode_head(request, content), timeout)

    async def _send_body(self, content: typing.Any, timeout: float | None) -> None:
        if content is None or isinstance(content, bytes):
            content = (content,) if content else ()
        await self._send_body_chunks(content, timeout)

    async def _send_body_chunks(self, content: typing.Any, timeout: float | None) -> bool:
        """A body from an iterable (async iterable in async code), then its end; whether
        its bytes went out as they came (no framing added: Content-Length)."""
        self._body_sent = 0
        if isinstance(content, AsyncIterable):
            async for chunk in content:
                await self._send_body_chunk(chunk, timeout)
        else:
            for chunk in content:
                await self._send_body_chunk(chunk, timeout)
        record = self._replaying
        if record is not None:
            if self._body_sent == record.body_length:
                self._body_ended = True
                return True
            self._catch_up()  # too short: h11 refuses the end below
        end = self._h11.send(_END_OF_MESSAGE)
        if end:
            await self._stream.write(end, timeout)
            return False
        return True

    def _request_head(self, request: Request, content: typing.Any) -> RequestHead:
        """The record of the request head, with Host and body framing added when missing."""
        headers = request.headers
        seen = 0
        for name, _ in headers:
            seen |= _FRAMING.get(name.lower(), 0)
        extra: list[tuple[bytes, bytes]] = []
        if not seen & 1:
            extra.append((b"Host", self._host_header))
        if content is None:
            pass
        elif isinstance(content, bytes):
            if not seen & 6 and (content or request.method in _BODY_METHODS):
                extra.append((b"Content-Length", b"%d" % len(content)))
        elif not seen & 6:
            extra.append((b"Transfer-Encoding", b"chunked"))
        key = tuple(extra + headers)
        try:
            return request_head(request.method, request.url.target, key)
        except TypeError:  # a header pair made unhashable after the request was built
            return request_head.__wrapped__(request.method, request.url.target, key)

    def _encode_head(self, request: Request, content: typing.Any) -> bytes:
        """The request head as bytes, written by h11."""
        head = self._h11.send(self._request_head(request, content).event)
        assert head is not None
        return head

    async def _send_body_chunk(self, chunk: bytes, timeout: float | None) -> None:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"Request body chunks must be bytes, not {type(chunk).__name__}")
        if chunk:
            record = self._replaying
            if record is not None and self._body_sent + len(chunk) > record.body_length:
                self._catch_up()  # too long: h11 refuses it below
                record = None
            if record is not None or count_body_chunk(self._h11, len(chunk)):
                data = chunk  # counted here or by h11: no framing to add
            else:
                data = self._h11.send(h11.Data(data=chunk))
            self._body_sent += len(chunk)
            if data:
                await self._stream.write(data, timeout)

    async def _read(self, timeout: float | None) -> bytes:
        data = await self._stream.read(READ_SIZE, timeout)
        if data:
            self._got_response_bytes = True
            self._received += len(data)
        return data

    async def _receive(self, timeout: float | None) -> None:
        if self._pending is None:
            self._feed(await self._read(timeout))
        else:
            self._feed_pending()

    def _feed(self, data: bytes) -> None:
        """Hand h11 bytes just read (b"" at the end of the stream)."""
        h = self._h11
        if not data and h.their_state is h11.SEND_RESPONSE:
            if self._got_response_bytes:
                raise RemoteProtocolError(TRUNCATED_HEAD)
            raise RemoteProtocolError("Server disconnected without sending a response.")
        if len(data) <= READ_SIZE:
            h.receive_data(data)
            return
        self._pending = memoryview(data)
        self._feed_pending()

    def _feed_pending(self) -> None:
        # A larger chunk (asyncio delivers up to 256 KiB) is fed to h11 a piece at a
        # time: h11 copies what it buffers, and copies above glibc's 128 KiB mmap
        # threshold cost page faults on every read.
        pending = self._pending
        assert pending is not None
        self._h11.receive_data(pending[:READ_SIZE])  # type: ignore[arg-type]  # h11 takes any bytes-like
        rest = pending[READ_SIZE:]
        self._pending = rest if rest else None

    async def _receive_counted(self, timeout: float | None) -> bytes:
        """Body bytes framed by Content-Length, straight from the network to the caller:
        counted off h11's reader, not copied through its buffer (``_h11_shortcuts``); h11
        still ends the body and sees any byte past it."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            data = bytes(pending)
        else:
            data = await self._stream.read(READ_SIZE, timeout)
            if not data:
                self._h11.receive_data(b"")  # h11 reports the body cut short
                return b""
        taken = count_body_received(self._h11, data)
        assert taken is not None
        if taken == len(data):
            return data
        self._h11.receive_data(data[taken:])  # past the body: h11 decides what it is
        return data[:taken]

    async def _receive_response_head_traced(
        self, request: Request, timeout: float | None, trace: typing.Any
    ) -> h11.Response | h11.InformationalResponse:
        """``.started`` and ``.failed`` here; ``.complete`` once the head is parsed (``_response``)."""
        await trace(_trace.HTTP11_RECEIVE_RESPONSE_HEADERS + _trace.STARTED, {"request": request})
        try:
            return await self._receive_response_head(timeout)
        except BaseException as exc:
            await trace(_trace.HTTP11_RECEIVE_RESPONSE_HEADERS + _trace.FAILED, {"exception": exc})
            raise

    async def _receive_response_head(
        self, timeout: float | None, first_read: bool = True
    ) -> h11.Response | h11.InformationalResponse:
        # Each cycle starts with h11's buffer empty (see _response_closed), so the
        # network is asked first rather than h11, which could only answer NEED_DATA
        # (unless the first read was made already: first_read is False).
        start = self._head_start
        if first_read:
            await self._receive(timeout)
        h = self._h11
        install_head_cache(h)
        informational = 0
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                await self._receive(timeout)
                continue
            if self._received - start > _HEAD_CHECKED_ABOVE:
                # h11 bounds only a head still incomplete: one that arrived whole in a
                # few reads could be larger. Measured only when that is possible.
                check_head(event)
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                if h.their_state is h11.SWITCHED_PROTOCOL:
                    return event  # 101 to our Upgrade: the last head on this connection
                informational += 1
                self._to_remember = None  # the head first read was not the response's
                if informational > MAX_INFORMATIONAL:
                    raise RemoteProtocolError(
                        f"The server sent more than {MAX_INFORMATIONAL} informational (1xx) responses"
                    )
                continue
            raise RemoteProtocolError(
                f"Unexpected {type(event).__name__} before the response"
            )  # pragma: no cover

    async def _receive_body_chunk(self, timeout: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        h = self._h11
        try:
            while True:
                event = h.next_event()
                if type(event) is h11.Data:
                    data = event.data
                    if data:
                        return data if type(data) is bytes else bytes(data)
                elif event is h11.NEED_DATA:
                    if body_framing(h) == LENGTH:
                        data = await self._receive_counted(timeout)
                        if data:
                            return data
                    else:
                        await self._receive(timeout)
                elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
                    return None  # PAUSED: the protocol was switched, the response has no body
                else:
                    raise RemoteProtocolError(f"Unexpected {type(event).__name__} in the response body")
        except BaseException as exc:
            await self._close()
            if isinstance(exc, h11.ProtocolError):
                raise map_h11_error(exc, in_body=True) from exc
            raise

    def _unread(self) -> bytes:
        """Bytes read past the last head that h11 will not parse (the protocol switched)."""
        unread = bytes(self._h11.trailing_data[0])
        if self._pending is not None:
            unread += bytes(self._pending)
            self._pending = None
        return unread

    async def _response_closed(self) -> None:
        """The caller is done with the response: reuse the connection only if both sides
        finished cleanly and nothing arrived past the end of the response."""
        h = self._h11
        if (
            self._state is _State.ACTIVE
            and h.our_state is h11.DONE
            and h.their_state is h11.DONE
            and not self._must_close
        ):
            h.start_next_cycle()
            unread, closed = h.trailing_data
            # closed: the body ended with the connection; pending: bytes past the response
            if not unread and not closed and self._pending is None:
                self._state = _State.IDLE
                if self._keepalive_expiry is not None:
                    self._expire_at = time.monotonic() + self._keepalive_expiry
                return
        await self._close()

    async def _close(self) -> None:
        if self._state is not _State.CLOSED:
            self._state = _State.CLOSED
            await self._stream.aclose()

    def capacity(self) -> int:
        return 1

    def has_expired(self) -> bool:
        if self._state is not _State.IDLE:
            # The pool asks only of connections carrying nothing: one still ACTIVE then
            # was abandoned mid-exchange and must never be handed out again.
            return True
        if self._expire_at is not None and time.monotonic() > self._expire_at:
            return True
        return self._stream.is_readable()

    def is_closed(self) -> bool:
        return self._state is _State.CLOSED

    def is_idle(self) -> bool:
        return self._state is _State.IDLE

    async def aclose(self) -> None:
        await self._close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.origin}, {self._state.name}, requests={self._requests}]>"
