"""The proxy a pool sends its requests through: where it is, how to log in, what to send it.

Theory of operation: a ``Proxy`` is plain, validated configuration, shared by both halves
and by every kind of proxy connection. Its URL is parsed once; credentials come from
``auth=`` or from the URL's userinfo (percent-decoded), and are then removed from the
stored URL, so nothing that prints the proxy or its URL can show them. For http(s)
proxies the ``Proxy-Authorization: Basic`` header is computed here, once, and kept in
``headers`` with the caller's own proxy headers: these go to the proxy only, never to an
origin. ``repr()`` shows neither the credentials nor the header values.
"""

from __future__ import annotations

import base64
import ssl
from urllib.parse import unquote, urlsplit, urlunsplit

from ._exceptions import LocalProtocolError, UnsupportedProtocol
from ._models import URL, HeaderTypes, Origin, enforce_headers

__all__ = ["PROXY_SCHEMES", "Proxy"]

# The proxy kinds a pool can speak: HTTP (forwarding and CONNECT), the same over TLS,
# SOCKS5 where we resolve names, SOCKS5 where the proxy does.
PROXY_SCHEMES = frozenset({b"http", b"https", b"socks5", b"socks5h"})
_BASIC_AUTH_SCHEMES = frozenset({b"http", b"https"})


def _credential(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"Proxy {what} must be bytes or str, not {type(value).__name__}")


def _split_userinfo(url: str) -> tuple[str, tuple[bytes, bytes] | None]:
    """The URL without its userinfo, and the percent-decoded credentials it carried.

    Errors never quote the URL: it may hold a password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise LocalProtocolError("Invalid proxy URL") from None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    credentials = (unquote(username).encode("utf-8"), unquote(password).encode("utf-8"))
    return urlunsplit(parts._replace(netloc=hostport)), credentials


class Proxy:
    """A proxy: ``Proxy("http://host:3128", auth=("user", "password"))``.

    ``url``: str, bytes or URL, scheme http, https, socks5 or socks5h. ``auth``: a
    (username, password) pair, else taken from the URL's userinfo. ``headers``: extra
    headers for the proxy (http and https proxies). ``ssl_context``: for the TLS session
    to an https proxy (default: the verifying context).
    """

    __slots__ = ("auth", "headers", "ssl_context", "url")

    def __init__(
        self,
        url: URL | bytes | str,
        auth: tuple[bytes | str, bytes | str] | None = None,
        headers: HeaderTypes = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        from_url: tuple[bytes, bytes] | None = None
        if not isinstance(url, URL):
            if isinstance(url, bytes):
                url = url.decode("ascii", errors="surrogateescape")
            if not isinstance(url, str):
                raise TypeError(f"Proxy URL must be str, bytes or URL, not {type(url).__name__}")
            stripped, from_url = _split_userinfo(url)
            try:
                url = URL(stripped)
            except LocalProtocolError:
                raise LocalProtocolError("Invalid proxy URL") from None
            except UnsupportedProtocol:
                raise UnsupportedProtocol(
                    "The proxy URL has no scheme: use http://, https:// or socks5://"
                ) from None
        if url.scheme not in PROXY_SCHEMES:
            raise UnsupportedProtocol(
                f"Unsupported proxy scheme {url.scheme.decode('ascii', 'replace')!r}: "
                "use http, https, socks5 or socks5h"
            )
        url.origin  # noqa: B018 - validates host and port now, not at the first request
        self.url = url
        if auth is not None:
            username, password = auth
            self.auth: tuple[bytes, bytes] | None = (
                _credential(username, "username"),
                _credential(password, "password"),
            )
        else:
            self.auth = from_url
        self.headers = enforce_headers(headers)
        given = any(name.lower() == b"proxy-authorization" for name, _ in self.headers)
        if self.auth is not None and url.scheme in _BASIC_AUTH_SCHEMES and not given:
            token = base64.b64encode(b"%s:%s" % self.auth)
            self.headers.insert(0, (b"Proxy-Authorization", b"Basic " + token))
        self.ssl_context = ssl_context

    @property
    def scheme(self) -> bytes:
        return self.url.scheme

    @property
    def origin(self) -> Origin:
        """Where the proxy listens (its default port filled in)."""
        return self.url.origin

    def __repr__(self) -> str:
        auth = ", auth=[hidden]" if self.auth is not None else ""
        headers = f", headers=[{len(self.headers)} hidden]" if self.headers else ""
        return f"Proxy({str(self.url)!r}{auth}{headers})"
