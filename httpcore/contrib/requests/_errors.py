"""How httpcore's exceptions reach a requests user: as the very exceptions, with the very
messages, that requests raises on its default urllib3 adapter.

Theory of operation: requests turns urllib3's exceptions into its own in two places,
``HTTPAdapter.send`` (connecting, sending, the response head) and
``Response.iter_content`` (the body). So an httpcore error is first expressed as the
urllib3 exception urllib3 would have raised in that place (``SEND_ERRORS`` while
sending, ``BODY_ERRORS`` while reading the body: tables keyed by our exception types),
which is also the value a urllib3 ``Retry`` counts. What is left over at the end of
sending goes through ``REQUESTS_ERRORS``, requests' own mapping written as a table; the
body's urllib3 errors are mapped by requests itself in ``iter_content``. The messages
carry what users grep for: "Max retries exceeded", "Failed to establish a new
connection", "Read timed out", "Connection aborted", "Connection broken".
"""

from __future__ import annotations

import http.client
import socket
import ssl
import typing
from collections.abc import Callable

import requests.exceptions as rq
from urllib3 import exceptions as u3

from ... import _exceptions as hc
from ..._sync.http11 import TRUNCATED_HEAD

__all__ = [
    "BODY_ERRORS",
    "REQUESTS_ERRORS",
    "SEND_ERRORS",
    "Endpoint",
    "body_error",
    "requests_error",
    "send_error",
]


class Endpoint:
    """Where a request goes, named the way urllib3 names its pools and connections in
    messages: ``HTTPConnectionPool(host='example.com', port=80)``."""

    __slots__ = ("connect_timeout", "host", "port", "proxy", "read_timeout", "scheme", "target", "url")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        url: str,
        target: str,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.target = target
        self.proxy: str | None = None
        self.scheme = scheme
        self.host = host
        self.port = port
        self.url = url
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def __str__(self) -> str:
        kind = "HTTPSConnectionPool" if self.scheme == "https" else "HTTPConnectionPool"
        return f"{kind}(host={self.host!r}, port={self.port!r})"

    __repr__ = __str__

    @property
    def connection(self) -> str:
        """How urllib3 names one connection in a NewConnectionError."""
        kind = "HTTPSConnection" if self.scheme == "https" else "HTTPConnection"
        return f"<urllib3.connection.{kind}(host={self.host!r}, port={self.port!r})>"


ErrorFactory = Callable[[hc.HTTPCoreError, Endpoint], Exception]


def _via_proxy(error: Exception, where: Endpoint) -> Exception:
    """Through a proxy, failing to connect is failing to reach the proxy."""
    if where.proxy is None:
        return error
    return u3.ProxyError("Unable to connect to proxy", error)


def _connect_error(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError | ssl.CertificateError):
        return u3.SSLError(cause)
    conn: typing.Any = where.connection
    if isinstance(cause, socket.gaierror):
        host = where.host if where.proxy is None else where.proxy
        return _via_proxy(u3.NameResolutionError(host, conn, cause), where)
    return _via_proxy(
        u3.NewConnectionError(conn, f"Failed to establish a new connection: {cause or exc}"), where
    )


def _connect_timeout(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    conn: typing.Any = where.connection
    return _via_proxy(
        u3.ConnectTimeoutError(
            conn, f"Connection to {where.host} timed out. (connect timeout={where.connect_timeout})"
        ),
        where,
    )


def _read_timeout(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    pool: typing.Any = where
    return u3.ReadTimeoutError(pool, where.target, f"Read timed out. (read timeout={where.read_timeout})")


def _truncated_head(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    # http.client takes a head cut short as complete, then fails reading the body.
    short = http.client.IncompleteRead(b"")
    return rq.ChunkedEncodingError(u3.ProtocolError(f"Connection broken: {short!r}", short))


def _conflicting_lengths(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    # urllib3 refuses it on reading the head, outside its retries.
    return rq.InvalidHeader(u3.InvalidHeader(f"Content-Length contained multiple unmatching values ({exc})"))


# Protocol errors that urllib3 reports as something else, told apart by our message.
_BY_MESSAGE: list[tuple[str, ErrorFactory]] = [
    (TRUNCATED_HEAD, _truncated_head),
    ("conflicting Content-Length headers", _conflicting_lengths),
]


def _aborted(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    message = str(exc)
    for text, factory in _BY_MESSAGE:
        if message.startswith(text):
            return factory(exc, where)
    return u3.ProtocolError("Connection aborted.", exc)


def _pool_closed(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    pool: typing.Any = where
    return u3.ClosedPoolError(pool, "Pool is closed.")


def _pool_timeout(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    pool: typing.Any = where
    return u3.EmptyPoolError(pool, "Pool is empty and a new connection can't be opened due to blocking mode.")


def _proxy_error(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    return u3.ProxyError("Unable to connect to proxy", exc)


def _invalid_request(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    return rq.InvalidURL(str(exc))


# While connecting and sending, up to the response head: what urllib3 raises instead.
SEND_ERRORS: dict[type[hc.HTTPCoreError], ErrorFactory] = {
    hc.ConnectTimeout: _connect_timeout,
    hc.ConnectError: _connect_error,
    hc.ReadTimeout: _read_timeout,
    hc.WriteTimeout: _aborted,
    hc.NetworkError: _aborted,
    hc.RemoteProtocolError: _aborted,
    hc.PoolTimeout: _pool_timeout,
    hc.PoolClosed: _pool_closed,
    hc.ProxyError: _proxy_error,
    hc.LocalProtocolError: _invalid_request,
    hc.UnsupportedProtocol: _invalid_request,
    hc.HTTPCoreError: _aborted,
}


def _broken(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    return u3.ProtocolError(f"Connection broken: {exc!r}", exc)


def _body_read_timeout(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    pool: typing.Any = where
    return u3.ReadTimeoutError(pool, None, "Read timed out.")


# While reading the body: what urllib3's response raises instead (requests then turns
# ProtocolError into ChunkedEncodingError and a read timeout into ConnectionError).
BODY_ERRORS: dict[type[hc.HTTPCoreError], ErrorFactory] = {
    hc.ReadTimeout: _body_read_timeout,
    hc.HTTPCoreError: _broken,
}


def _lookup(table: dict[type[hc.HTTPCoreError], ErrorFactory], exc: hc.HTTPCoreError) -> ErrorFactory:
    for klass in type(exc).__mro__:
        factory = table.get(klass)
        if factory is not None:
            return factory
    raise exc  # pragma: no cover - HTTPCoreError is in every table


def send_error(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    """The urllib3 (or requests) exception for an httpcore error raised while sending."""
    return _lookup(SEND_ERRORS, exc)(exc, where)


def body_error(exc: hc.HTTPCoreError, where: Endpoint) -> Exception:
    """The urllib3 exception for an httpcore error raised while reading a body."""
    return _lookup(BODY_ERRORS, exc)(exc, where)


# requests' own mapping of what urllib3 raised from sending, first match wins: the
# reason of a MaxRetryError, then the error itself.
_RETRY_REASONS: list[tuple[type[Exception], type[rq.RequestException]]] = [
    (u3.NewConnectionError, rq.ConnectionError),
    (u3.ConnectTimeoutError, rq.ConnectTimeout),
    (u3.ResponseError, rq.RetryError),
    (u3.ProxyError, rq.ProxyError),
    (u3.SSLError, rq.SSLError),
    (Exception, rq.ConnectionError),
]
REQUESTS_ERRORS: list[tuple[type[Exception], type[rq.RequestException]]] = [
    (u3.ProtocolError, rq.ConnectionError),
    (OSError, rq.ConnectionError),
    (u3.ClosedPoolError, rq.ConnectionError),
    (u3.ProxyError, rq.ProxyError),
    (u3.SSLError, rq.SSLError),
    (u3.ReadTimeoutError, rq.ReadTimeout),
    (u3.InvalidHeader, rq.InvalidHeader),
]


def requests_error(exc: Exception, request: typing.Any) -> Exception:
    """The requests exception for a urllib3 exception raised while sending; anything
    requests would let through unchanged is returned unchanged."""
    if isinstance(exc, rq.RequestException):
        exc.request = request
        return exc
    if isinstance(exc, u3.MaxRetryError):
        for klass, target in _RETRY_REASONS:  # pragma: no branch - Exception ends it
            if isinstance(exc.reason, klass):
                return target(exc, request=request)
    for klass, target in REQUESTS_ERRORS:
        if isinstance(exc, klass):
            if target is rq.ProxyError:
                return target(exc)
            return target(exc, request=request)
    return exc
