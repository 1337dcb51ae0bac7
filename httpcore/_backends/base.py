"""The network interface the protocol code is written against, in async and sync form.

A backend opens streams; a stream reads, writes, upgrades to TLS and closes, each call
with its own deadline. Implementations translate every OS, ssl and timeout error into
the httpcore exception tree, so nothing above this layer catches foreign exceptions.
"""

from __future__ import annotations

import socket
import ssl
import typing
from collections.abc import Iterable

__all__ = [
    "AsyncNetworkBackend",
    "AsyncNetworkStream",
    "NetworkBackend",
    "NetworkStream",
    "SocketOption",
    "apply_socket_options",
]

SocketOption = typing.Union[
    tuple[int, int, int],
    tuple[int, int, typing.Union[bytes, bytearray]],
    tuple[int, int, None, int],
]


def apply_socket_options(sock: socket.socket, options: Iterable[SocketOption] | None) -> None:
    """Set the caller's ``(level, option, value)`` socket options before connecting."""
    for option in options or ():
        sock.setsockopt(*option)


class NetworkStream:
    """A connected byte stream (blocking)."""

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; b"" once the peer has closed."""
        raise NotImplementedError()  # pragma: no cover

    def write(self, data: bytes, timeout: float | None = None) -> None:
        raise NotImplementedError()  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError()  # pragma: no cover

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        raise NotImplementedError()  # pragma: no cover

    def get_extra_info(self, info: str) -> typing.Any:
        return None  # pragma: no cover

    def is_readable(self) -> bool:
        """True when the peer sent data or closed: an idle connection is then unusable."""
        raise NotImplementedError()  # pragma: no cover


class NetworkBackend:
    """Opens blocking streams."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> NetworkStream:
        raise NotImplementedError()  # pragma: no cover

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> NetworkStream:
        raise NotImplementedError()  # pragma: no cover

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError()  # pragma: no cover

    def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """The IP addresses of ``host`` for TCP, in the resolver's order of preference,
        without repeats (for a proxy that is sent addresses, not names: SOCKS5)."""
        raise NotImplementedError()  # pragma: no cover


class AsyncNetworkStream:
    """A connected byte stream (async)."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """The next bytes received, b"" once the peer has closed. ``max_bytes`` is a
        hint: a chunk the event loop delivered in one piece is returned whole."""
        raise NotImplementedError()  # pragma: no cover

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        raise NotImplementedError()  # pragma: no cover

    async def aclose(self) -> None:
        raise NotImplementedError()  # pragma: no cover

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        raise NotImplementedError()  # pragma: no cover

    def get_extra_info(self, info: str) -> typing.Any:
        return None  # pragma: no cover

    def is_readable(self) -> bool:
        """True when the peer sent data or closed: an idle connection is then unusable."""
        raise NotImplementedError()  # pragma: no cover


class AsyncNetworkBackend:
    """Opens async streams."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        raise NotImplementedError()  # pragma: no cover

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        raise NotImplementedError()  # pragma: no cover

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError()  # pragma: no cover

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """The IP addresses of ``host`` for TCP, in the resolver's order of preference,
        without repeats (for a proxy that is sent addresses, not names: SOCKS5)."""
        raise NotImplementedError()  # pragma: no cover
