"""The httpcore 1.x spelling of a proxied pool, as httpx 0.28 constructs it.

Theory of operation: ``AsyncHTTPProxy(proxy_url=..., proxy_auth=..., ...)`` is an
``AsyncConnectionPool`` built with ``proxy=Proxy(...)`` from those keyword arguments,
nothing more: every request goes through the proxy by the pool's usual routes. Defaults
are 1.x's (``max_connections=10``, no keep-alive limit or expiry unless given).
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import Iterable

from .._backends.base import AsyncNetworkBackend, SocketOption
from .._exceptions import UnsupportedProtocol
from .._models import URL, HeaderTypes
from .._proxy import Proxy
from .._socks import encode_credentials
from .connection_pool import AsyncConnectionPool

__all__ = ["AsyncHTTPProxy", "AsyncSOCKSProxy"]


class AsyncHTTPProxy(AsyncConnectionPool):
    """A pool whose every request goes through one HTTP or HTTPS proxy."""

    def __init__(
        self,
        proxy_url: URL | bytes | str,
        proxy_auth: tuple[bytes | str, bytes | str] | None = None,
        proxy_headers: HeaderTypes = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy_ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = 10,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        local_address: str | None = None,
        uds: str | None = None,
        network_backend: AsyncNetworkBackend | None = None,
        socket_options: Iterable[SocketOption] | None = None,
        **options: typing.Any,
    ) -> None:
        proxy = Proxy(proxy_url, auth=proxy_auth, headers=proxy_headers, ssl_context=proxy_ssl_context)
        if proxy.scheme not in (b"http", b"https"):
            raise UnsupportedProtocol(
                "HTTPProxy takes an http:// or https:// proxy URL (SOCKSProxy is for socks5)"
            )
        super().__init__(
            ssl_context=ssl_context,
            http1=http1,
            http2=http2,
            retries=retries,
            proxy=proxy,
            local_address=local_address,
            uds=uds,
            socket_options=socket_options,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=network_backend,
            **options,
        )
        self._proxy_url = proxy.url  # 1.x's attribute, read by httpx (its tests do); no userinfo


class AsyncSOCKSProxy(AsyncConnectionPool):
    """A pool whose every request goes through one SOCKS5 proxy (``socks5://``: we
    resolve names; ``socks5h://``: the proxy does)."""

    def __init__(
        self,
        proxy_url: URL | bytes | str,
        proxy_auth: tuple[bytes | str, bytes | str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = 10,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float | None = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        network_backend: AsyncNetworkBackend | None = None,
        **options: typing.Any,
    ) -> None:
        proxy = Proxy(proxy_url, auth=proxy_auth)
        if proxy.scheme not in (b"socks5", b"socks5h"):
            raise UnsupportedProtocol(
                "SOCKSProxy takes a socks5:// or socks5h:// proxy URL (HTTPProxy is for http and https)"
            )
        if proxy.auth is not None:
            encode_credentials(*proxy.auth)  # too long for RFC 1929: say so now, not per request
        super().__init__(
            ssl_context=ssl_context,
            http1=http1,
            http2=http2,
            retries=retries,
            proxy=proxy,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=network_backend,
            **options,
        )
        self._proxy_url = proxy.url  # 1.x's attribute, read by httpx (its tests do); no userinfo
