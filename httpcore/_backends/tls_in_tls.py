"""TLS over a stream that is itself TLS: the origin's session inside an HTTPS proxy's.

Theory of operation: an ``ssl.SSLSocket`` cannot be wrapped a second time, and asyncio
before 3.11 cannot ``start_tls`` on a TLS transport. So the inner session is an
``ssl.SSLObject`` over two ``MemoryBIO``s, driven by hand: whenever OpenSSL wants bytes
(``SSLWantReadError``) we read the next piece from the outer stream. The handshake runs
under one deadline, a write too (its wait for its turn to send included); a read takes
the caller's timeout per network call, like the other streams. Errors come out as the
httpcore exceptions the backends use.

Sending. The outgoing BIO is the one send queue: records enter it in the order the
session makes them, and leave it only through whoever holds the send lock, who sends
the queue until it is empty, records queued by others while it wrote included, and lets
go only once it has seen it empty. A writer waits for its turn (within its timeout): its
bytes have left when it returns. A reader's records (a key update's answer, a
renegotiation's, an alert) go out from the reader only when nothing was queued ahead of
them, nobody holds the send lock and no writer waits for it; otherwise it leaves them
to the sender and goes back to reading, and a reader that is sending hands over to a
waiting writer. So no one waits for the send lock while it could be reading: against a
peer that stops reading while it cannot write (an HTTPS proxy relaying with one thread),
the reader keeps the tunnel moving while a writer is stuck in the outer write. What is
left: a reader sending its own records blocks if the outer socket's buffer is full
while nobody writes, which takes a peer that has stopped reading altogether. A write
that times out waiting for its turn leaves its records queued, and the next sender
sends them; a send that fails may have torn a record, so every later write fails
(reads go on).

Threads (the blocking stream, HTTP/2 reading in one thread while another writes): one
call at a time into the inner session, its BIOs included (a lock, never held across I/O;
the send lock is only tried under it). The outer stream must allow a read and a write
at once: the sync backend's TLS stream takes turns in its own session
(``sync_backend.py``), as that one ``SSLSocket`` read in one thread while written in
another is what broke these connections.

Tasks (the async twin, made by the asyncio backend only: trio nests its own TLS
streams): the same queue and rules, with ``AsyncLock`` as the send lock and no session
lock (nothing else runs between two awaits). It needed them as much: two sends at once
(two writers, or a reader's flush while a writer waited for the socket) were two
waiting writers on the asyncio stream, which wakes only one, and a reader could wait
for the socket as well.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
import time
import typing
from collections.abc import Callable

from .._exceptions import ConnectError, ConnectTimeout, ReadError, ReadTimeout, WriteError, WriteTimeout
from .._synchronization import AsyncLock
from .base import AsyncNetworkStream, NetworkStream

__all__ = ["AsyncTLSInTLSStream", "TLSInTLSStream"]

READ_SIZE = 64 * 1024
T = typing.TypeVar("T")


def _session(
    context: ssl.SSLContext, server_hostname: str | None
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return (
        context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname),
        incoming,
        outgoing,
    )


def _left(timeout: float | None, deadline: float | None) -> float | None:
    """The timeout of the next network call: ``timeout`` itself, or under a deadline
    (a handshake's, a write's) what is left of it."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    return left if left > 0.0 else 0.0


class TLSInTLSStream(NetworkStream):
    """A blocking stream: an ``SSLObject`` session over another ``NetworkStream``."""

    def __init__(
        self,
        stream: NetworkStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._stream = stream
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing  # the send queue: records in the order they were made
        # One call at a time into the session and its BIOs (``_session_lock``); one
        # sender at a time (``_send_lock``, tried under the session lock, never waited
        # for there). ``_writers``: writers whose records are queued and who wait for
        # (or hold) the send lock. ``_send_failed``: records were lost in a failed send.
        self._session_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._writers = 0
        self._send_failed = False

    @classmethod
    def handshake(
        cls,
        stream: NetworkStream,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> TLSInTLSStream:
        self = cls(stream, *_session(context, server_hostname))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._drive(self._ssl.do_handshake, timeout, deadline, writer=True)
        except (ConnectTimeout, ReadTimeout, WriteTimeout) as exc:
            stream.close()
            raise ConnectTimeout("TLS handshake timed out") from exc
        except (ssl.SSLError, ssl.CertificateError, ReadError, WriteError) as exc:
            stream.close()
            raise ConnectError(str(exc) or repr(exc)) from exc
        return self

    def _drive(
        self, operation: Callable[[], T], timeout: float | None, deadline: float | None, writer: bool
    ) -> T:
        """Run an SSLObject operation, moving bytes through the outer stream until it
        completes. A writer sends the records it made (waiting for its turn); a reader
        only when nothing is queued ahead of them and nobody sends or waits to."""
        session, outgoing, lock = self._session_lock, self._outgoing, self._send_lock
        while True:
            data, wait = b"", False
            with session:
                queued = outgoing.pending
                try:
                    result = operation()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                if outgoing.pending > queued and not self._send_failed:
                    if (writer or not (queued or self._writers)) and lock.acquire(False):
                        data = outgoing.read()  # our turn at once: the usual case
                    elif writer:
                        self._writers += 1
                        wait = True
            if data:
                self._send_held(timeout, deadline, writer, data)
            elif wait:
                self._send(timeout, deadline)
            elif writer and self._send_failed:
                raise WriteError("An earlier write to the server failed")
            if done:
                return result
            data = self._stream.read(READ_SIZE, _left(timeout, deadline))
            with session:
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()

    def _send(self, timeout: float | None, deadline: float | None) -> None:
        """A writer's turn: wait for the send lock (within the timeout), then send."""
        acquired = False
        try:
            left = _left(timeout, deadline)
            acquired = self._send_lock.acquire(True, -1 if left is None else left)
        finally:
            with self._session_lock:
                self._writers -= 1
        if not acquired:
            # Its records stay queued, for the next sender: the caller gives the
            # connection up after a write timeout anyway.
            raise WriteTimeout("Timed out writing to the server")
        self._send_held(timeout, deadline, True, b"")

    def _send_held(self, timeout: float | None, deadline: float | None, writer: bool, data: bytes) -> None:
        """Holding the send lock: send ``data`` (taken from the queue), then the queue
        in order until it is empty (records queued meanwhile by others included), then
        let go, under the session lock so that nobody can queue records unseen in
        between. A reader stops early when a writer is waiting: that writer sends the
        rest, and the reader goes back to reading."""
        session, lock = self._session_lock, self._send_lock
        while True:
            if data:
                try:
                    self._stream.write(data, _left(timeout, deadline))
                except BaseException:
                    with session:
                        self._send_failed = True  # part of a record may be out: nothing can follow
                        lock.release()
                    raise
            with session:
                if self._send_failed or not self._outgoing.pending or (self._writers and not writer):
                    lock.release()
                    if self._send_failed and writer:
                        raise WriteError("An earlier write to the server failed")
                    return
                data = self._outgoing.read()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._drive(lambda: self._ssl.read(max_bytes), timeout, None, writer=False)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise ReadError(str(exc) or repr(exc)) from exc

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Send ``data`` within ``timeout``: one deadline for the wait for our turn to
        send and the sending."""
        view = memoryview(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while view:
                written = self._drive(
                    functools.partial(self._ssl.write, view), timeout, deadline, writer=True
                )
                view = view[written:]
        except ssl.SSLError as exc:
            raise WriteError(str(exc) or repr(exc)) from exc

    def close(self) -> None:
        self._stream.close()

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._ssl
        if info == "is_readable":
            return self.is_readable()
        return self._stream.get_extra_info(info)

    def is_readable(self) -> bool:
        with self._session_lock:
            if self._ssl.pending() or self._incoming.pending:
                return True
        return self._stream.is_readable()


class AsyncTLSInTLSStream(AsyncNetworkStream):
    """The async twin of ``TLSInTLSStream``, over another ``AsyncNetworkStream``."""

    def __init__(
        self,
        stream: AsyncNetworkStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._stream = stream
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        # As in the blocking stream, without the session lock: nothing else runs between
        # two awaits. One sender at a time still, as a send may wait for the socket.
        self._send_lock = AsyncLock()
        self._writers = 0
        self._send_failed = False

    @classmethod
    async def handshake(
        cls,
        stream: AsyncNetworkStream,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> AsyncTLSInTLSStream:
        self = cls(stream, *_session(context, server_hostname))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            await self._drive(self._ssl.do_handshake, timeout, deadline, writer=True)
        except (ConnectTimeout, ReadTimeout, WriteTimeout) as exc:
            await stream.aclose()
            raise ConnectTimeout("TLS handshake timed out") from exc
        except (ssl.SSLError, ssl.CertificateError, ReadError, WriteError) as exc:
            await stream.aclose()
            raise ConnectError(str(exc) or repr(exc)) from exc
        except BaseException:
            await stream.aclose()
            raise
        return self

    async def _drive(
        self, operation: Callable[[], T], timeout: float | None, deadline: float | None, writer: bool
    ) -> T:
        outgoing, lock = self._outgoing, self._send_lock
        while True:
            queued = outgoing.pending
            try:
                result = operation()
                done = True
            except ssl.SSLWantReadError:
                done = False
            if outgoing.pending > queued and not self._send_failed:
                if (writer or not (queued or self._writers)) and lock.try_acquire():
                    await self._send_held(timeout, deadline, writer, outgoing.read())
                elif writer:
                    self._writers += 1
                    await self._send(timeout, deadline)
            elif writer and self._send_failed:
                raise WriteError("An earlier write to the server failed")
            if done:
                return result
            data = await self._stream.read(READ_SIZE, _left(timeout, deadline))
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    async def _send(self, timeout: float | None, deadline: float | None) -> None:
        try:
            left = _left(timeout, deadline)
            await asyncio.wait_for(self._send_lock.acquire(), left)
        except asyncio.TimeoutError as exc:
            # Its records stay queued, for the next sender.
            raise WriteTimeout("Timed out writing to the server") from exc
        finally:
            self._writers -= 1
        await self._send_held(timeout, deadline, True, b"")

    async def _send_held(
        self, timeout: float | None, deadline: float | None, writer: bool, data: bytes
    ) -> None:
        lock = self._send_lock
        while True:
            if data:
                try:
                    await self._stream.write(data, _left(timeout, deadline))
                except BaseException as exc:
                    # A cancelled write is not a lost one (the asyncio stream takes all
                    # of it before it waits); a failed one may be.
                    self._send_failed = self._send_failed or isinstance(exc, Exception)
                    lock.release()
                    raise
            if self._send_failed or not self._outgoing.pending or (self._writers and not writer):
                lock.release()
                if self._send_failed and writer:
                    raise WriteError("An earlier write to the server failed")
                return
            data = self._outgoing.read()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self._drive(lambda: self._ssl.read(max_bytes), timeout, None, writer=False)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise ReadError(str(exc) or repr(exc)) from exc

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        view = memoryview(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while view:
                written = await self._drive(
                    functools.partial(self._ssl.write, view), timeout, deadline, writer=True
                )
                view = view[written:]
        except ssl.SSLError as exc:
            raise WriteError(str(exc) or repr(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._ssl
        if info == "is_readable":
            return self.is_readable()
        return self._stream.get_extra_info(info)

    def is_readable(self) -> bool:
        return bool(self._ssl.pending() or self._incoming.pending) or self._stream.is_readable()
