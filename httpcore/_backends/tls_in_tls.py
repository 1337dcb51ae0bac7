"""TLS over a stream that is itself TLS: the origin's session inside an HTTPS proxy's.

Theory of operation: an ``ssl.SSLSocket`` cannot be wrapped a second time, and asyncio
before 3.11 cannot ``start_tls`` on a TLS transport. So the inner session is an
``ssl.SSLObject`` over two ``MemoryBIO``s, driven by hand: whenever OpenSSL wants bytes
(``SSLWantReadError``) we send what it has queued and read the next piece from the
outer stream; whatever it queues after a call goes out at once. The handshake runs
under one deadline; reads and writes take the caller's timeout per network call, like
the other streams. Errors come out as the httpcore exceptions the backends use.

Threads (the blocking stream, HTTP/2 reading in one thread while another writes): one
call at a time into the inner session, its BIOs included (a lock, never held across
I/O), and the records it queued leave in the order they were made (a send lock). The
outer stream must allow a read and a write at once: the sync backend's TLS stream
takes turns in its own session (``sync_backend.py``), as that one ``SSLSocket`` read in
one thread while written in another is what broke these connections.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
import typing
from collections.abc import Callable

from .._config import time_left
from .._exceptions import ConnectError, ConnectTimeout, ReadError, ReadTimeout, WriteError, WriteTimeout
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
        self._outgoing = outgoing
        # HTTP/2 may read in one thread while another writes. OpenSSL must not see one
        # session from two threads at once (``_session_lock``), and the records queued for
        # the outer stream must leave in the order they were made (``_send_lock``).
        self._session_lock = threading.Lock()
        self._send_lock = threading.Lock()

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
            self._drive(self._ssl.do_handshake, lambda: time_left(deadline))
        except (ConnectTimeout, ReadTimeout, WriteTimeout) as exc:
            stream.close()
            raise ConnectTimeout("TLS handshake timed out") from exc
        except (ssl.SSLError, ssl.CertificateError, ReadError, WriteError) as exc:
            stream.close()
            raise ConnectError(str(exc) or repr(exc)) from exc
        return self

    def _drive(self, operation: Callable[[], T], timeout: Callable[[], float | None]) -> T:
        """Run an SSLObject operation, moving bytes through the outer stream until it completes."""
        while True:
            try:
                with self._session_lock:
                    result = operation()
            except ssl.SSLWantReadError:
                self._flush(timeout())
                data = self._stream.read(READ_SIZE, timeout())
                with self._session_lock:
                    if data:
                        self._incoming.write(data)
                    else:
                        self._incoming.write_eof()
                continue
            self._flush(timeout())
            return result

    def _flush(self, timeout: float | None) -> None:
        if self._outgoing.pending:
            with self._send_lock:
                with self._session_lock:
                    data = self._outgoing.read()
                if data:
                    self._stream.write(data, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._drive(lambda: self._ssl.read(max_bytes), lambda: timeout)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise ReadError(str(exc) or repr(exc)) from exc

    def write(self, data: bytes, timeout: float | None = None) -> None:
        view = memoryview(data)
        try:
            while view:
                written = self._drive(functools.partial(self._ssl.write, view), lambda: timeout)
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
            await self._drive(self._ssl.do_handshake, lambda: time_left(deadline))
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

    async def _drive(self, operation: Callable[[], T], timeout: Callable[[], float | None]) -> T:
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                await self._flush(timeout())
                data = await self._stream.read(READ_SIZE, timeout())
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            await self._flush(timeout())
            return result

    async def _flush(self, timeout: float | None) -> None:
        if self._outgoing.pending:
            await self._stream.write(self._outgoing.read(), timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self._drive(lambda: self._ssl.read(max_bytes), lambda: timeout)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        except ssl.SSLError as exc:
            raise ReadError(str(exc) or repr(exc)) from exc

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        view = memoryview(data)
        try:
            while view:
                written = await self._drive(functools.partial(self._ssl.write, view), lambda: timeout)
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
