"""httpcore: a small, fast, low-level HTTP client for sync and async code.

It returns plain data (a status code, byte-pair headers, a body or a stream) and does
the hard parts: connection pooling, HTTP/1.1 and HTTP/2, TLS, timeouts and limits.
"""

from ._api import request
from ._async.connection import AsyncHTTPConnection
from ._async.connection_pool import AsyncConnectionPool
from ._async.http11 import AsyncHTTP11Connection
from ._async.interfaces import AsyncConnectionInterface
from ._backends.asyncio_backend import AsyncioBackend
from ._backends.base import AsyncNetworkBackend, AsyncNetworkStream, NetworkBackend, NetworkStream
from ._backends.sync_backend import SyncBackend
from ._config import Limits, Timeout, default_ssl_context
from ._exceptions import (
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
from ._models import URL, Origin, Request, Response
from ._sync.connection import HTTPConnection
from ._sync.connection_pool import ConnectionPool
from ._sync.http11 import HTTP11Connection
from ._sync.interfaces import ConnectionInterface

__version__ = "0.1.0"

__all__ = [
    "URL",
    "AsyncConnectionInterface",
    "AsyncConnectionPool",
    "AsyncHTTP11Connection",
    "AsyncHTTPConnection",
    "AsyncNetworkBackend",
    "AsyncNetworkStream",
    "AsyncioBackend",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionInterface",
    "ConnectionPool",
    "HTTP11Connection",
    "HTTPConnection",
    "HTTPCoreError",
    "Limits",
    "LocalProtocolError",
    "NetworkBackend",
    "NetworkError",
    "NetworkStream",
    "Origin",
    "PoolClosed",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SyncBackend",
    "Timeout",
    "TimeoutException",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "default_ssl_context",
    "request",
]
