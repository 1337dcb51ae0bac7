"""httpx transports on this package's pools: ``HTTPTransport`` and ``AsyncHTTPTransport``.

    client = httpx2.AsyncClient(transport=AsyncHTTPTransport(http2=True))   # or httpx.Client(...)

Theory of operation. httpx 0.28 and its maintained fork httpx2 share one transport
interface, so one pair of classes serves both; neither library is a dependency of this
package (``pip install httpcore[httpx]``). Which library a request belongs to is read
from its class, once per class (``_library_of``); the response is then built from that
library's own classes: its ``Response``, and a body stream subclassing its
``SyncByteStream``/``AsyncByteStream`` (httpx2 checks). The pool is made on the first
request, with the TLS context that library's ``create_ssl_context`` makes of ``verify``,
``cert`` and ``trust_env``, so certificate handling is what the user's httpx would have
done. Our errors become the httpx exception of the same meaning (``_ERRORS``), on
sending and while the body streams. httpx2's websocket code catches httpcore2's
``ReadError``/``WriteError`` on the network stream of a 101 response; for httpx2 that
stream is wrapped to raise those. Bodies httpx holds in memory are sent as bytes (one
write with the head), streamed bodies as they come.
"""

from __future__ import annotations

import importlib
import threading
import types
import typing
from collections.abc import AsyncIterator, Iterable, Iterator

from .._async.connection import require_h2
from .._async.connection_pool import AsyncConnectionPool
from .._backends.base import SocketOption
from .._exceptions import (
    ConnectError,
    ConnectTimeout,
    HTTPCoreError,
    LocalProtocolError,
    NetworkError,
    PoolClosed,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    TimeoutException,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
)
from .._models import URL, Request
from .._proxy import Proxy
from .._sync.connection_pool import ConnectionPool

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

# Our exception -> the httpx (and httpx2) exception of the same meaning. An error is
# mapped by its most specific class listed here.
_ERRORS: dict[type[HTTPCoreError], str] = {
    ConnectTimeout: "ConnectTimeout",
    ReadTimeout: "ReadTimeout",
    WriteTimeout: "WriteTimeout",
    PoolTimeout: "PoolTimeout",
    TimeoutException: "TimeoutException",
    ConnectError: "ConnectError",
    ReadError: "ReadError",
    WriteError: "WriteError",
    NetworkError: "NetworkError",
    ProxyError: "ProxyError",
    UnsupportedProtocol: "UnsupportedProtocol",
    LocalProtocolError: "LocalProtocolError",
    RemoteProtocolError: "RemoteProtocolError",
    ProtocolError: "ProtocolError",
    PoolClosed: "TransportError",  # the transport was closed
    HTTPCoreError: "TransportError",
}
# For httpx2's websockets: errors on the network stream of a 101 response, as httpcore2's.
_CORE_ERRORS: dict[type[HTTPCoreError], str] = {
    ReadTimeout: "ReadTimeout",
    WriteTimeout: "WriteTimeout",
    ReadError: "ReadError",
    WriteError: "WriteError",
    NetworkError: "NetworkError",
    TimeoutException: "TimeoutException",
    HTTPCoreError: "NetworkError",
}
_LIBRARIES = ("httpx", "httpx2")
SWITCHING_PROTOCOLS = 101


ErrorMapper = typing.Callable[..., Exception]


def _mapper(module: types.ModuleType, table: dict[type[HTTPCoreError], str]) -> ErrorMapper:
    """A function turning one of our errors into ``module``'s exception of that meaning."""
    classes = {ours: getattr(module, theirs) for ours, theirs in table.items()}

    def mapped(exc: HTTPCoreError, **kwargs: typing.Any) -> Exception:
        for cls in type(exc).__mro__:
            theirs = classes.get(cls)
            if theirs is not None:
                error: Exception = theirs(str(exc), **kwargs)
                return error
        raise AssertionError("unreachable: HTTPCoreError is in every table")  # pragma: no cover

    return mapped


class _Library:
    """What a transport needs of httpx or httpx2, loaded when a request of it first comes."""

    def __init__(self, name: str) -> None:
        module = importlib.import_module(name)
        self.name = name
        self.response: typing.Any = module.Response
        self.byte_stream: typing.Any = module.ByteStream
        self.create_ssl_context: typing.Any = module.create_ssl_context
        self.error = _mapper(module, _ERRORS)
        self.sync_stream: typing.Any = type("ResponseStream", (_SyncBody, module.SyncByteStream), {})
        self.async_stream: typing.Any = type("AsyncResponseStream", (_AsyncBody, module.AsyncByteStream), {})
        # httpx runs on this package as its httpcore, so our errors are already the ones
        # its ecosystem catches; httpx2 catches httpcore2's.
        self.core_error: ErrorMapper | None = None
        if name == "httpx2":
            self.core_error = _mapper(importlib.import_module("httpcore2"), _CORE_ERRORS)


_libraries: dict[type, _Library] = {}


def _library_of(request: typing.Any) -> _Library:
    """The library (httpx or httpx2) whose client sent ``request``, by its class."""
    cls = type(request)
    library = _libraries.get(cls)
    if library is None:
        names = [klass.__module__.partition(".")[0] for klass in cls.__mro__]
        name = next((name for name in names if name in _LIBRARIES), None)
        if name is None:
            raise TypeError(f"Expected an httpx or httpx2 Request, not {cls.__module__}.{cls.__qualname__}")
        library = _libraries[cls] = _Library(name)
    return library


def _core_request(request: typing.Any, library: _Library) -> Request:
    """Our request for an httpx one: same method, URL parts, headers and extensions."""
    url = request.url
    stream = request.stream
    # A body httpx holds in memory goes as bytes: one write with the head.
    content = b"".join(stream) if isinstance(stream, library.byte_stream) else stream
    return Request(
        request.method,
        URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        headers=request.headers.raw,
        content=content,
        extensions=request.extensions,
    )


class _Options:
    """The arguments of httpx's transports, kept until the first request makes the pool."""

    def __init__(
        self,
        verify: typing.Any,
        cert: typing.Any,
        trust_env: bool,
        http1: bool,
        http2: bool,
        limits: typing.Any,
        proxy: typing.Any,
        uds: str | None,
        local_address: str | None,
        retries: int,
        socket_options: Iterable[SocketOption] | None,
    ) -> None:
        self.verify, self.cert, self.trust_env = verify, cert, trust_env
        self.pool: dict[str, typing.Any] = {
            "http1": http1,
            "http2": http2,
            "retries": retries,
            "local_address": local_address,
            "uds": uds,
            "socket_options": socket_options,
            "proxy": _proxy(proxy),
        }
        if limits is not None:
            self.pool["max_connections"] = limits.max_connections
            self.pool["max_keepalive_connections"] = limits.max_keepalive_connections
            self.pool["keepalive_expiry"] = limits.keepalive_expiry
        if not (http1 or http2):
            raise UnsupportedProtocol("At least one of http1 and http2 must be enabled")
        if http2:
            require_h2()

    def pool_arguments(self, library: _Library) -> dict[str, typing.Any]:
        ssl_context = library.create_ssl_context(verify=self.verify, cert=self.cert, trust_env=self.trust_env)
        return {"ssl_context": ssl_context, **self.pool}


def _proxy(proxy: typing.Any) -> Proxy | None:
    """Our Proxy for httpx's ``proxy=`` (a URL string, an httpx URL, or an httpx Proxy)."""
    if proxy is None or isinstance(proxy, Proxy):
        return proxy
    if isinstance(proxy, str | bytes):
        return Proxy(proxy)
    if hasattr(proxy, "raw_auth"):  # httpx.Proxy / httpx2.Proxy
        return Proxy(
            str(proxy.url),
            auth=proxy.raw_auth,
            headers=proxy.headers.raw,
            ssl_context=proxy.ssl_context,
        )
    return Proxy(str(proxy))  # httpx.URL


class HTTPTransport:
    """httpx's ``HTTPTransport`` on a ``httpcore.ConnectionPool``, for httpx and httpx2 clients."""

    def __init__(
        self,
        verify: typing.Any = True,
        cert: typing.Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: typing.Any = None,
        proxy: typing.Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> None:
        self._options = _Options(
            verify, cert, trust_env, http1, http2, limits, proxy, uds, local_address, retries, socket_options
        )
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _open(self, library: _Library) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                if self._closed:
                    raise PoolClosed("The transport was closed")
                self._pool = ConnectionPool(**self._options.pool_arguments(library))
            return self._pool

    def handle_request(self, request: typing.Any) -> typing.Any:
        library = _library_of(request)
        try:
            pool = self._pool or self._open(library)
            response = pool.handle_request(_core_request(request, library))
        except HTTPCoreError as exc:
            raise library.error(exc, request=request) from exc
        extensions = response.extensions
        if response.status_code == SWITCHING_PROTOCOLS and library.core_error is not None:
            extensions["network_stream"] = _NetworkStream(extensions["network_stream"], library.core_error)
        return library.response(
            status_code=response.status_code,
            headers=response.headers,
            stream=library.sync_stream(response.stream, library, request),
            extensions=extensions,
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> HTTPTransport:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class AsyncHTTPTransport:
    """httpx's ``AsyncHTTPTransport`` on a ``httpcore.AsyncConnectionPool``, for httpx and
    httpx2 clients."""

    def __init__(
        self,
        verify: typing.Any = True,
        cert: typing.Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: typing.Any = None,
        proxy: typing.Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> None:
        self._options = _Options(
            verify, cert, trust_env, http1, http2, limits, proxy, uds, local_address, retries, socket_options
        )
        self._pool: AsyncConnectionPool | None = None
        self._closed = False

    def _open(self, library: _Library) -> AsyncConnectionPool:
        # No await between the check and the assignment: one task makes the pool.
        if self._pool is None:
            if self._closed:
                raise PoolClosed("The transport was closed")
            self._pool = AsyncConnectionPool(**self._options.pool_arguments(library))
        return self._pool

    async def handle_async_request(self, request: typing.Any) -> typing.Any:
        library = _library_of(request)
        try:
            pool = self._pool or self._open(library)
            response = await pool.handle_async_request(_core_request(request, library))
        except HTTPCoreError as exc:
            raise library.error(exc, request=request) from exc
        extensions = response.extensions
        if response.status_code == SWITCHING_PROTOCOLS and library.core_error is not None:
            network_stream = extensions["network_stream"]
            extensions["network_stream"] = _AsyncNetworkStream(network_stream, library.core_error)
        return library.response(
            status_code=response.status_code,
            headers=response.headers,
            stream=library.async_stream(response.stream, library, request),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def __aenter__(self) -> AsyncHTTPTransport:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()


class _SyncBody:
    """A response body for an httpx client; with the library's ``SyncByteStream`` as a
    second base (see ``_Library``). Our errors surface as the library's."""

    def __init__(self, stream: typing.Any, library: _Library, request: typing.Any) -> None:
        self._stream = stream
        self._library = library
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except HTTPCoreError as exc:
            raise self._library.error(exc, request=self._request) from exc

    def close(self) -> None:
        try:
            self._stream.close()
        except HTTPCoreError as exc:
            raise self._library.error(exc, request=self._request) from exc


class _AsyncBody:
    """The async form of ``_SyncBody``, with the library's ``AsyncByteStream``."""

    def __init__(self, stream: typing.Any, library: _Library, request: typing.Any) -> None:
        self._stream = stream
        self._library = library
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except HTTPCoreError as exc:
            raise self._library.error(exc, request=self._request) from exc

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except HTTPCoreError as exc:
            raise self._library.error(exc, request=self._request) from exc


class _NetworkStream:
    """The network stream of a switched protocol, raising httpcore2's errors (httpx2)."""

    def __init__(self, stream: typing.Any, error: ErrorMapper) -> None:
        self._stream = stream
        self._error = error

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data: bytes = self._stream.read(max_bytes, timeout)
        except HTTPCoreError as exc:
            raise self._error(exc) from exc
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._stream.write(buffer, timeout)
        except HTTPCoreError as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        self._stream.close()

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _AsyncNetworkStream:
    """The async form of ``_NetworkStream``."""

    def __init__(self, stream: typing.Any, error: ErrorMapper) -> None:
        self._stream = stream
        self._error = error

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data: bytes = await self._stream.read(max_bytes, timeout)
        except HTTPCoreError as exc:
            raise self._error(exc) from exc
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            await self._stream.write(buffer, timeout)
        except HTTPCoreError as exc:
            raise self._error(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)
