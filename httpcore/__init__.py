"""httpcore: a small, fast, low-level HTTP client for sync and async code.

It returns plain data (a status code, byte-pair headers, a body or a stream) and does
the hard parts: connection pooling, HTTP/1.1 and HTTP/2, TLS, timeouts and limits.

The package also answers to the httpcore 1.x interface that httpx 0.28 is written
against (hence the 1.x version number). httpx's suite checks that every exception class
in this namespace has an httpx counterpart; the two that 1.x never had, the common base
``HTTPCoreError`` and ``PoolClosed``, are therefore resolved on first access
(``__getattr__`` below) rather than bound at import, and stay importable as usual.
"""

import typing

from ._api import request
from ._async.connection import AsyncHTTPConnection
from ._async.connection_pool import AsyncConnectionPool
from ._async.http11 import AsyncHTTP11Connection
from ._async.interfaces import AsyncConnectionInterface
from ._async.proxy_pool import AsyncHTTPProxy, AsyncSOCKSProxy
from ._backends.asyncio_backend import AsyncioBackend
from ._backends.base import AsyncNetworkBackend, AsyncNetworkStream, NetworkBackend, NetworkStream
from ._backends.sync_backend import SyncBackend
from ._config import Limits, Timeout, default_ssl_context
from ._exceptions import (
    ConnectError,
    ConnectionNotAvailable,
    ConnectTimeout,
    LocalProtocolError,
    NetworkError,
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
from ._proxy import Proxy
from ._sync.connection import HTTPConnection
from ._sync.connection_pool import ConnectionPool
from ._sync.http11 import HTTP11Connection
from ._sync.interfaces import ConnectionInterface
from ._sync.proxy_pool import HTTPProxy, SOCKSProxy

if typing.TYPE_CHECKING:
    from ._backends.trio_backend import TrioBackend as TrioBackend  # not in __all__: optional
    from ._exceptions import HTTPCoreError, PoolClosed

__version__ = "1.1.0"

if not typing.TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> typing.Any:
        if name in ("HTTPCoreError", "PoolClosed"):
            from . import _exceptions

            return getattr(_exceptions, name)
        if name == "TrioBackend":  # trio is optional, and imported only when asked for
            from ._backends.trio_backend import TrioBackend

            return TrioBackend
        raise AttributeError(f"module 'httpcore' has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | {"HTTPCoreError", "PoolClosed"})


__all__ = [
    "URL",
    "AsyncConnectionInterface",
    "AsyncConnectionPool",
    "AsyncHTTP11Connection",
    "AsyncHTTPConnection",
    "AsyncHTTPProxy",
    "AsyncSOCKSProxy",
    "AsyncNetworkBackend",
    "AsyncNetworkStream",
    "AsyncioBackend",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionInterface",
    "ConnectionNotAvailable",
    "ConnectionPool",
    "HTTP11Connection",
    "HTTPConnection",
    "HTTPCoreError",
    "HTTPProxy",
    "Limits",
    "LocalProtocolError",
    "NetworkBackend",
    "NetworkError",
    "NetworkStream",
    "Origin",
    "PoolClosed",
    "PoolTimeout",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SOCKSProxy",
    "SyncBackend",
    "Timeout",
    "TimeoutException",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "default_ssl_context",
    "request",
]
