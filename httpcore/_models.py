"""Plain data models shared by the sync and async halves: URL, Origin, Request, Response.

Theory of operation: everything the wire needs is kept as bytes, normalised once when a
model is built, so the protocol code below never re-validates or re-encodes. A URL
string is parsed through a small cache because clients send the same URLs again and
again. A Response carries either a body already read (``_body``) or a stream object
owned by a connection (``_stream``); reading drains the stream once and keeps the bytes.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from ._exceptions import ConnectError, LocalProtocolError, UnsupportedProtocol

__all__ = [
    "URL",
    "HeaderTypes",
    "Origin",
    "Request",
    "Response",
    "enforce_headers",
]

HeaderTypes = typing.Union[
    Sequence[tuple[typing.Union[bytes, str], typing.Union[bytes, str]]],
    Mapping[typing.Union[bytes, str], typing.Union[bytes, str]],
    None,
]
RequestContent = typing.Union[bytes, Iterable[bytes], AsyncIterable[bytes], None]

DEFAULT_PORTS: dict[bytes, int] = {b"http": 80, b"https": 443, b"socks5": 1080, b"socks5h": 1080}

# RFC 9110 token characters, for methods and header names.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
# CR, LF and NUL end a header line early on the wire; no other control character
# (but tab) is valid either. Refused here, so the protocol engines need not check again.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
# Whitespace and control characters have no place in a URL given to us as text.
_FORBIDDEN_IN_URL = re.compile(r"[\x00-\x20\x7f]").search
_FORBIDDEN_IN_TARGET = re.compile(rb"[\x00-\x20\x7f]").search


class Origin(typing.NamedTuple):
    """Where a connection goes: scheme, host and port (the default port filled in)."""

    scheme: bytes
    host: bytes
    port: int

    @property
    def authority(self) -> bytes:
        """``host[:port]`` as the Host header (HTTP/1.1) or ``:authority`` (HTTP/2) says
        it: IPv6 literals bracketed, the port left out when it is the scheme's default."""
        host = b"[" + self.host + b"]" if b":" in self.host else self.host
        if self.port == DEFAULT_PORTS.get(self.scheme):
            return host
        return b"%s:%d" % (host, self.port)

    def __str__(self) -> str:
        host = self.host.decode("ascii")
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme.decode('ascii')}://{host}:{self.port}"


def _to_bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{what} {value!r} is not ASCII") from None
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


@functools.lru_cache(maxsize=512)
def _parse_url(url: str) -> tuple[bytes, bytes, int | None, bytes]:
    """Split a URL string into (scheme, host, port, target); cached because URLs repeat."""
    if _FORBIDDEN_IN_URL(url):
        raise LocalProtocolError(f"URL {url!r} contains whitespace or control characters")
    try:
        url.encode("ascii")
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except (ValueError, UnicodeError) as exc:
        if isinstance(exc, UnicodeEncodeError):
            # A non-ASCII host is IDNA-encoded below; anything else must be ASCII.
            return _parse_idna_url(url)
        raise LocalProtocolError(f"Invalid URL {url!r}: {exc}") from None
    if not parts.scheme or "://" not in url:
        raise UnsupportedProtocol(f"Request URL {url!r} is missing an 'http://' or 'https://' protocol.")
    if parts.username is not None or parts.password is not None:
        raise LocalProtocolError("Credentials in the URL are not sent; use an Authorization header")
    if not hostname:
        raise LocalProtocolError(f"URL {url!r} has no host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    elif url.split("#", 1)[0].endswith("?"):
        target += "?"
    return parts.scheme.encode("ascii"), hostname.encode("ascii"), port, target.encode("ascii")


def _parse_idna_url(url: str) -> tuple[bytes, bytes, int | None, bytes]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnsupportedProtocol(f"Request URL {url!r} is missing an 'http://' or 'https://' protocol.")
    end = len(rest)
    for ch in "/?#":
        idx = rest.find(ch)
        if idx != -1:
            end = min(end, idx)
    authority, remainder = rest[:end], rest[end:]
    host, _, port = (
        authority.rpartition(":") if authority.rfind(":") > authority.rfind("]") else (authority, "", "")
    )
    try:
        ascii_host = host.encode("idna").decode("ascii")
        remainder.encode("ascii")
    except UnicodeError:
        raise LocalProtocolError(f"Invalid URL {url!r}: non-ASCII characters outside the host") from None
    rebuilt = f"{scheme}://{ascii_host}{':' + port if port else ''}{remainder}"
    return _parse_url(rebuilt)


class URL:
    """A request URL as bytes: scheme, host (IPv6 without brackets), port or None, target."""

    __slots__ = ("host", "port", "scheme", "target")

    def __init__(
        self,
        url: bytes | str = "",
        *,
        scheme: bytes | str = b"",
        host: bytes | str = b"",
        port: int | None = None,
        target: bytes | str = b"",
    ) -> None:
        if url:
            if isinstance(url, bytes):
                url = url.decode("ascii", errors="surrogateescape")
            self.scheme, self.host, self.port, self.target = _parse_url(url)
            return
        self.scheme = _to_bytes(scheme, "URL scheme").lower()
        self.host = _to_bytes(host, "URL host")
        self.port = port
        self.target = _to_bytes(target, "URL target") or b"/"
        if _FORBIDDEN_IN_TARGET(self.target) or _FORBIDDEN_IN_TARGET(self.host):
            raise LocalProtocolError("URL contains whitespace or control characters")

    @property
    def origin(self) -> Origin:
        """The connection key for this URL; raises UnsupportedProtocol for other schemes.

        A port outside 1-65535 is refused here, at request time, as ConnectError (what
        httpx expects of its core for it), never wrapped round into another port."""
        port = self.port
        if port is not None and not 0 < port < 65536:
            raise ConnectError(f"Cannot connect to port {port}: TCP ports are 1 to 65535")
        if port is None:
            try:
                port = DEFAULT_PORTS[self.scheme]
            except KeyError:
                raise UnsupportedProtocol(
                    f"Request URL has an unsupported protocol '{self.scheme.decode('ascii', 'replace')}://'."
                ) from None
        if not self.host:
            raise LocalProtocolError("Request URL has no host")
        return Origin(self.scheme, self.host, port)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str | bytes):
            other = URL(other)
        return isinstance(other, URL) and (
            self.scheme,
            self.host,
            self.port,
            self.target,
        ) == (other.scheme, other.host, other.port, other.target)

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port, self.target))

    def __bytes__(self) -> bytes:
        host = b"[" + self.host + b"]" if b":" in self.host else self.host
        port = b"" if self.port is None else b":%d" % self.port
        return b"%s://%s%s%s" % (self.scheme, host, port, self.target)

    def __str__(self) -> str:
        return bytes(self).decode("ascii")

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


def enforce_headers(headers: HeaderTypes) -> list[tuple[bytes, bytes]]:
    """Normalise headers to (bytes, bytes) pairs; refuse names that are not tokens and
    values holding CR, LF or NUL, so nothing malformed can reach the wire."""
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: list[tuple[bytes, bytes]] = []
    for name, value in items:
        if not isinstance(name, bytes):
            name = _to_bytes(name, "Header name")
        if not isinstance(value, bytes):
            if not isinstance(value, str):
                raise TypeError(f"Header value must be bytes or str, not {type(value).__name__}")
            try:
                value = value.encode("latin-1")
            except UnicodeEncodeError:
                raise LocalProtocolError(f"Header value {value!r} is not latin-1") from None
        if not _TOKEN(name):
            raise LocalProtocolError(f"Invalid header name {name!r}")
        if _FORBIDDEN_IN_VALUE(value):
            raise LocalProtocolError(f"Header value for {name!r} contains CR, LF, NUL or a control character")
        result.append((name, value))
    return result


_KNOWN_METHODS: dict[bytes | str, bytes] = {
    spelling: name.encode("ascii")
    for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
    for spelling in (name, name.encode("ascii"))
}


def enforce_method(method: bytes | str) -> bytes:
    """A method as bytes, refused unless it is a token."""
    known = _KNOWN_METHODS.get(method)
    if known is not None:
        return known
    if not isinstance(method, bytes):
        method = _to_bytes(method, "Method")
    if not _TOKEN(method):
        raise LocalProtocolError(f"Invalid method {method!r}")
    return method


class Request:
    """One HTTP request: method, URL, headers, content and per-request extensions.

    ``content`` is bytes, an iterable of bytes (sync) or an async iterable (async), or
    None for no body. Extensions: "timeout" (dict), "trace" (callback), "sni_hostname".
    """

    __slots__ = ("content", "extensions", "headers", "method", "url")

    def __init__(
        self,
        method: bytes | str,
        url: URL | bytes | str,
        *,
        headers: HeaderTypes = None,
        content: RequestContent | bytearray | memoryview = None,
        extensions: dict[str, typing.Any] | None = None,
    ) -> None:
        self.method = enforce_method(method)
        self.url = url if isinstance(url, URL) else URL(url)
        self.headers = enforce_headers(headers)
        if content is not None and type(content) is not bytes:
            if isinstance(content, bytearray | memoryview):
                content = bytes(content)
            elif isinstance(content, str):
                raise TypeError("Request content must be bytes or an iterable of bytes, not str")
        self.content = content
        self.extensions: dict[str, typing.Any] = {} if extensions is None else extensions

    @property
    def stream(self) -> RequestContent:
        """The 1.x spelling of ``content``."""
        return self.content

    def __repr__(self) -> str:
        return f"<Request [{self.method.decode('ascii')} {self.url}]>"


class ByteStream:
    """A body already in memory, presented with the streaming interface (sync and async)."""

    __slots__ = ("_body", "_done")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._done = False

    def __call__(self) -> ByteStream:
        return self

    def __iter__(self) -> ByteStream:
        return self

    def __next__(self) -> bytes:
        if self._done or not self._body:
            raise StopIteration
        self._done = True
        return self._body

    def __aiter__(self) -> ByteStream:
        return self

    async def __anext__(self) -> bytes:
        if self._done or not self._body:
            raise StopAsyncIteration
        self._done = True
        return self._body

    def close(self) -> None:
        self._done = True

    async def aclose(self) -> None:
        self._done = True


class Response:
    """A status, headers as received (byte pairs, order and case kept), a body or a
    stream, and extensions ("http_version", "reason_phrase", "network_stream", "stream_id").
    """

    __slots__ = ("_body", "_stream", "extensions", "headers", "status_code")

    def __init__(
        self,
        status: int,
        *,
        headers: HeaderTypes = None,
        content: RequestContent = None,
        extensions: dict[str, typing.Any] | None = None,
    ) -> None:
        self.status_code = status
        self.headers = enforce_headers(headers)
        self.extensions: dict[str, typing.Any] = {} if extensions is None else extensions
        self._body: bytes | None = None
        self._stream: typing.Any = None
        if content is None:
            self._body = b""
        elif isinstance(content, bytes):
            self._body = content
        else:
            self._stream = content

    @classmethod
    def _from_stream(
        cls,
        status: int,
        headers: list[tuple[bytes, bytes]],
        stream: typing.Any,
        extensions: dict[str, typing.Any],
        body: bytes | None = None,
    ) -> Response:
        """Build a response from already-normalised parts (the protocol drivers' path):
        a stream still to be read, or the whole body when it arrived with the head."""
        self = cls.__new__(cls)
        self.status_code = status
        self.headers = headers
        self.extensions = extensions
        self._body = body
        self._stream = stream
        return self

    @property
    def status(self) -> int:
        """The 1.x spelling of ``status_code``."""
        return self.status_code

    @property
    def http_version(self) -> bytes:
        version: bytes = self.extensions.get("http_version", b"HTTP/1.1")
        return version

    @property
    def reason_phrase(self) -> bytes:
        reason: bytes = self.extensions.get("reason_phrase", b"")
        return reason

    @property
    def stream(self) -> typing.Any:
        """The body as a stream: call it (``r.stream()``) or iterate it; ``close()``/``aclose()``."""
        if self._stream is None:
            self._stream = ByteStream(self._body or b"")
        return self._stream

    @stream.setter
    def stream(self, value: typing.Any) -> None:
        # The body is now whatever the new stream yields (the pool wraps a body read
        # with the head in a stream that releases the connection when it ends).
        self._stream = value
        self._body = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            raise RuntimeError(
                "The body of a streaming response has not been read: call read() or aread() first."
            )
        return self._body

    content = body

    def read(self) -> bytes:
        """Read the rest of a streaming body (sync) and release the connection."""
        if self._body is None:
            stream: typing.Any = self._stream
            if not isinstance(self._stream, Iterable):
                raise RuntimeError("This is an async response: use 'await response.aread()'.")
            try:
                self._body = b"".join(stream)
            finally:
                stream.close()
            self._stream = None
        elif self._stream is not None:  # read with the head; the stream only holds the connection
            stream, self._stream = self._stream, None
            stream.close()
        return self._body

    async def aread(self) -> bytes:
        """Read the rest of a streaming body (async) and release the connection."""
        if self._body is None:
            stream: typing.Any = self._stream
            if not isinstance(self._stream, AsyncIterable):
                raise RuntimeError("This is a sync response: use 'response.read()'.")
            try:
                self._body = b"".join([chunk async for chunk in stream])
            finally:
                await stream.aclose()
            self._stream = None
        elif self._stream is not None:  # read with the head; the stream only holds the connection
            stream, self._stream = self._stream, None
            await stream.aclose()
        return self._body

    def iter_stream(self) -> Iterator[bytes]:
        yield from self.stream

    async def aiter_stream(self) -> typing.AsyncIterator[bytes]:
        async for chunk in self.stream:
            yield chunk

    def close(self) -> None:
        if self._stream is not None and hasattr(self._stream, "close"):
            self._stream.close()

    async def aclose(self) -> None:
        if self._stream is not None and hasattr(self._stream, "aclose"):
            await self._stream.aclose()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"
