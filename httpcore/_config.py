"""Configuration values shared by both halves: Timeout, Limits, the TLS context, and
what is left of a deadline.

Theory of operation: a pool resolves its configuration once, at construction. Timeouts
travel with each request as the ``"timeout"`` extension (a dict, the form httpx sends),
so a per-request override costs one dict lookup. A connect timeout is one deadline for
every step of the connect; ``time_left`` hands each step what is left of it, for the
connections, the proxies and the TLS-in-TLS handshake alike (the backends may import
it from here). The default SSL context is built once per process from certifi's
bundle; loading a CA bundle is the dominant cost of a new context, so it is never
repeated per connection.
"""

from __future__ import annotations

import ssl
import threading
import time
import typing

from ._exceptions import ConnectTimeout

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "MAX_CONCURRENT_STREAMS",
    "MAX_HEADER_LIST_DECODED",
    "MAX_HEADER_LIST_SIZE",
    "MAX_INFORMATIONAL",
    "MAX_RESPONSE_HEADERS",
    "MAX_RESPONSE_HEAD_SIZE",
    "MAX_RESPONSE_LINE",
    "MAX_UNPROCESSED",
    "Limits",
    "Timeout",
    "default_ssl_context",
    "time_left",
]

_UNSET: typing.Any = object()


class Timeout:
    """Deadlines in seconds (None for none): connect, read, write and pool.

    ``Timeout(5.0)`` sets all four; keywords set single ones and win over the positional.
    """

    __slots__ = ("connect", "pool", "read", "write")

    def __init__(
        self,
        timeout: float | None = None,
        *,
        connect: float | None = _UNSET,
        read: float | None = _UNSET,
        write: float | None = _UNSET,
        pool: float | None = _UNSET,
    ) -> None:
        self.connect: float | None = timeout if connect is _UNSET else connect
        self.read: float | None = timeout if read is _UNSET else read
        self.write: float | None = timeout if write is _UNSET else write
        self.pool: float | None = timeout if pool is _UNSET else pool

    @classmethod
    def coerce(cls, value: Timeout | float | dict[str, float | None] | None) -> Timeout:
        """A Timeout from a Timeout, a number (all four), a dict, or None (no deadlines)."""
        if isinstance(value, Timeout):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"connect", "read", "write", "pool"}
            if unknown:
                raise TypeError(f"Unknown timeout keys: {sorted(unknown)}")
            return cls(**value)
        return cls(value)

    def as_dict(self) -> dict[str, float | None]:
        return {"connect": self.connect, "read": self.read, "write": self.write, "pool": self.pool}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timeout) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"Timeout(connect={self.connect}, read={self.read}, write={self.write}, pool={self.pool})"


class Limits:
    """How many connections a pool may hold, how many idle ones it keeps, and for how long."""

    __slots__ = ("keepalive_expiry", "max_connections", "max_keepalive_connections")

    def __init__(
        self,
        max_connections: int | None = 100,
        max_keepalive_connections: int | None = 20,
        keepalive_expiry: float | None = 5.0,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 (or None for no limit)")
        if max_keepalive_connections is not None and max_keepalive_connections < 0:
            raise ValueError("max_keepalive_connections must not be negative")
        self.max_connections = max_connections
        self.max_keepalive_connections = max_keepalive_connections
        self.keepalive_expiry = keepalive_expiry

    def __repr__(self) -> str:
        return (
            f"Limits(max_connections={self.max_connections}, "
            f"max_keepalive_connections={self.max_keepalive_connections}, "
            f"keepalive_expiry={self.keepalive_expiry})"
        )


DEFAULT_TIMEOUT = Timeout(5.0)
DEFAULT_LIMITS = Limits()


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value; None for no deadline):
    each step of a connect (TCP, proxy handshake, TLS) gets what is left of the connect
    timeout, never more. Never zero either, which would make a blocking call a
    non-blocking one: a deadline that has passed raises ``ConnectTimeout``."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectTimeout("Timed out connecting: the connect timeout ran out")
    return left


# -- What a server can make us hold -------------------------------------------------
# Each is checked on what the server sends; going past one fails with a
# RemoteProtocolError that names it (README: "What the library guarantees").
#
# HTTP/1.1: a response head (status line, header lines and their line ends). h11 refuses
# one that grows past it while incomplete; one that arrived whole is measured. The same
# bound holds any line of a chunked body's framing (a chunk-size line, the trailers).
MAX_RESPONSE_HEAD_SIZE = 100 * 1024
# HTTP/1.1: the status line or one header line.
MAX_RESPONSE_LINE = 64 * 1024
# Header fields in one response head, HTTP/1.1 and HTTP/2.
MAX_RESPONSE_HEADERS = 1000
# Informational (1xx) responses allowed before the final one, in HTTP/1.1 and HTTP/2:
# real servers send a few, and each may come within the read timeout, so without a cap
# a server could keep a request waiting for ever.
MAX_INFORMATIONAL = 64
# HTTP/2: a received header block, decoded, as RFC 9113 counts it (name + value + 32
# per field); advertised as SETTINGS_MAX_HEADER_LIST_SIZE. Its encoded form may take at
# most twice that (HPACK shrinks a header list; only a hostile encoder grows it).
MAX_HEADER_LIST_SIZE = 100 * 1024
# HTTP/2: how far a header block is decoded before decoding stops. A block past
# MAX_HEADER_LIST_SIZE but within this is decoded whole, so HPACK's table stays in step
# with the server's and only its stream fails; an honest encoder's block that passed
# the encoded bound above decodes to less (Huffman expands by 8/5 at most). Past this
# (a block built to inflate: references to a large table entry, again and again)
# decoding stops part-way, the HPACK state is lost, and the connection fails with it.
MAX_HEADER_LIST_DECODED = 4 * MAX_HEADER_LIST_SIZE
# A request a server sends back unprocessed (HTTP/2: REFUSED_STREAM before its stream
# limit was known, or a GOAWAY that leaves the stream out) goes to another connection;
# this many times in a row at most, or a server refusing every stream would have a
# request open connections for ever.
MAX_UNPROCESSED = 10
# HTTP/2: the most streams we open at once on one connection; fewer if the server's
# SETTINGS_MAX_CONCURRENT_STREAMS says so (100, RFC 9113's advice, until they arrive).
MAX_CONCURRENT_STREAMS = 1000

_contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def default_ssl_context(alpn_protocols: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """The shared verifying context (certifi CA bundle, hostname check) for these ALPN ids.

    One context per ALPN list, made on first use and kept for the life of the process.
    """
    context = _contexts.get(alpn_protocols)
    if context is None:
        with _contexts_lock:
            context = _contexts.get(alpn_protocols)
            if context is None:
                import certifi

                context = ssl.create_default_context(cafile=certifi.where())
                context.set_alpn_protocols(list(alpn_protocols))
                _contexts[alpn_protocols] = context
    return context
