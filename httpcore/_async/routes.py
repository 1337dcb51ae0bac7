"""How a pool reaches an origin: directly, forwarded by an HTTP proxy, through a CONNECT
tunnel, or through SOCKS. The pool asks once, at construction, and gets two functions.

Theory of operation: ``connection_factory(proxy, **options)`` returns ``(key, create)``.
``key(url)`` is the pool key a request's connection is filed under; ``create(key)``
makes a new (unopened) connection for that key. Without a proxy the key is the origin
and every connection an ``AsyncHTTPConnection``. With a proxy the connection class comes
from ``ROUTES``, a table keyed by (proxy scheme, origin scheme). Each pool has one proxy,
so keying by origin is keying by (proxy, origin); the exception is HTTP forwarding, whose
key is the proxy itself: one kept-alive connection to it serves every http:// origin.
The pool stays free of proxy knowledge: it only calls ``key`` and ``create``.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable

from .._exceptions import UnsupportedProtocol
from .._models import URL, Origin
from .._proxy import Proxy
from .connection import AsyncHTTPConnection
from .http_proxy import AsyncForwardHTTPConnection, AsyncTunnelHTTPConnection
from .interfaces import AsyncConnectionInterface

__all__ = ["ROUTES", "ProxyArgument", "connection_factory"]

# What a pool's ``proxy=`` takes: a Proxy, its URL, or None for direct connections.
ProxyArgument = typing.Union[Proxy, URL, bytes, str, None]
Key = Callable[[URL], Origin]
Create = Callable[[Origin], AsyncConnectionInterface]
ConnectionClass = Callable[..., AsyncConnectionInterface]


def _socks_connection() -> ConnectionClass:
    from .socks_proxy import AsyncSOCKSConnection  # imported only when a SOCKS proxy is used

    return AsyncSOCKSConnection


def _forward() -> ConnectionClass:
    return AsyncForwardHTTPConnection


def _tunnel() -> ConnectionClass:
    return AsyncTunnelHTTPConnection


# (proxy scheme, origin scheme) -> the connection class, looked up once per pool (the
# SOCKS module is imported only when a SOCKS proxy is used).
ROUTES: dict[tuple[bytes, bytes], Callable[[], ConnectionClass]] = {
    (b"http", b"http"): _forward,
    (b"http", b"https"): _tunnel,
    (b"https", b"http"): _forward,
    (b"https", b"https"): _tunnel,
    (b"socks5", b"http"): _socks_connection,
    (b"socks5", b"https"): _socks_connection,
    (b"socks5h", b"http"): _socks_connection,
    (b"socks5h", b"https"): _socks_connection,
}

_origin_of: Key = operator.attrgetter("origin")


def connection_factory(proxy: ProxyArgument, **options: typing.Any) -> tuple[Key, Create]:
    """The pool's ``key`` and ``create`` functions for this proxy (a ``Proxy``, or its
    URL; or None). ``options`` are ``AsyncHTTPConnection``'s keyword arguments; proxy
    connections also get ``proxy``."""
    if proxy is None:

        def create_direct(origin: Origin) -> AsyncConnectionInterface:
            return AsyncHTTPConnection(origin, **options)

        return _origin_of, create_direct

    if not isinstance(proxy, Proxy):
        proxy = Proxy(proxy)
    classes = {
        origin_scheme: route()
        for (proxy_scheme, origin_scheme), route in ROUTES.items()
        if proxy_scheme == proxy.scheme
    }
    if not classes:
        raise UnsupportedProtocol(f"Unsupported proxy scheme {proxy.scheme.decode('ascii', 'replace')!r}")
    # Forwarded origins share the proxy's key (scheme http: no TLS to the origin).
    forwarded = {
        scheme: Origin(b"http", proxy.origin.host, proxy.origin.port)
        for scheme, cls in classes.items()
        if getattr(cls, "serves_any_origin", False)
    }

    def key(url: URL) -> Origin:
        origin = url.origin
        shared = forwarded.get(origin.scheme)
        if shared is not None:
            return shared
        if origin.scheme not in classes:
            raise UnsupportedProtocol(
                f"Request URL has an unsupported protocol {origin.scheme.decode('ascii', 'replace')!r}."
            )
        return origin

    def create(origin: Origin) -> AsyncConnectionInterface:
        return classes[origin.scheme](origin, proxy=proxy, **options)

    return key, create
