"""The exception tree every failure is reported through.

Lower layers (sockets, ssl, h11, h2) raise their own errors; the backends and the
protocol drivers translate them into these classes at the point where they are caught,
so no foreign exception escapes the package.
"""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionNotAvailable",
    "HTTPCoreError",
    "LocalProtocolError",
    "NetworkError",
    "PoolClosed",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "TimeoutException",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
]


class HTTPCoreError(Exception):
    """Base class of every error httpcore raises."""


class TimeoutException(HTTPCoreError):
    """A deadline passed."""


class ConnectTimeout(TimeoutException):
    """Opening the connection (TCP or TLS) took longer than the connect timeout."""


class ReadTimeout(TimeoutException):
    """No data arrived from the server within the read timeout."""


class WriteTimeout(TimeoutException):
    """The server did not accept our data within the write timeout."""


class PoolTimeout(TimeoutException):
    """No connection became free within the pool timeout."""


class NetworkError(HTTPCoreError):
    """The transport failed."""


class ConnectError(NetworkError):
    """The connection could not be opened (refused, unreachable, TLS failure)."""


class ReadError(NetworkError):
    """Receiving from the network failed."""


class WriteError(NetworkError):
    """Sending to the network failed."""


class ProtocolError(HTTPCoreError):
    """The HTTP exchange broke the protocol."""


class RemoteProtocolError(ProtocolError):
    """The server broke the protocol (malformed or truncated response, early close)."""


class LocalProtocolError(ProtocolError):
    """The request we were asked to send is invalid."""


class PoolClosed(HTTPCoreError, RuntimeError):
    """The pool was closed; it takes no more requests."""


class ProxyError(HTTPCoreError):
    """The proxy refused or failed to set up the connection."""


class UnsupportedProtocol(HTTPCoreError):
    """The URL's scheme, or the requested protocol combination, is not supported."""


class ConnectionNotAvailable(Exception):
    """Internal: the connection cannot take this request now; the pool picks another.

    Never escapes the pool.
    """


class StaleConnection(RemoteProtocolError):
    """A reused keep-alive connection failed before any byte of the response arrived.

    The server most likely closed it while it sat idle. The pool retries such a request
    once on a new connection when that is safe; otherwise this error is what callers see.
    """
