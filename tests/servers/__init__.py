"""Loopback-only test servers for the httpcore test-suite.

* ``app``: a framework-free ASGI app with echo/stream/slow/status endpoints;
* ``asgi_server``: uvicorn (HTTP/1.1) and hypercorn (HTTP/2) in threads;
* ``raw``: a socket-level fault-injection server driven by handler callables;
* ``tls``: a trustme CA and the SSL contexts / PEM files derived from it;
* ``netutil``: binding ephemeral loopback ports and formatting URLs.
"""

from .app import app, pattern
from .asgi_server import HypercornServer, UvicornServer
from .netutil import format_url, has_ipv6_loopback
from .raw import (
    Handler,
    RawConnection,
    RawServer,
    RawServerFactory,
    chunked,
    keep_alive,
    ok,
    per_connection,
    response,
    scripted,
)
from .tls import (
    CertFiles,
    client_ssl_context,
    get_ca,
    server_ssl_context,
    write_cert_files,
)

__all__ = [
    "CertFiles",
    "Handler",
    "HypercornServer",
    "RawConnection",
    "RawServer",
    "RawServerFactory",
    "UvicornServer",
    "app",
    "chunked",
    "client_ssl_context",
    "format_url",
    "get_ca",
    "has_ipv6_loopback",
    "keep_alive",
    "ok",
    "pattern",
    "per_connection",
    "response",
    "scripted",
    "server_ssl_context",
    "write_cert_files",
]
