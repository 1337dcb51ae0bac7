"""Socket helpers shared by the test servers.

Theory of operation: every server in this package binds its listening socket
itself, on an ephemeral port of a loopback address, before any server code
runs.  The port is therefore known immediately and clients can connect (the
kernel queues them in the backlog) even before the accept loop is running.
"""

from __future__ import annotations

import socket

__all__ = ["bind_listener", "format_url", "has_ipv6_loopback"]


def bind_listener(host: str, backlog: int = 128) -> socket.socket:
    """A blocking TCP socket listening on ``host`` at an ephemeral port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Accepted sockets inherit TCP_NODELAY: without it a server that writes the
        # head and the body separately stalls each response on the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, 0))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def format_url(scheme: str, host: str, port: int) -> str:
    """``http://127.0.0.1:8000`` or ``https://[::1]:8443``."""
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}:{port}"


def has_ipv6_loopback() -> bool:
    """True when ``::1`` can be bound on this machine."""
    if not socket.has_ipv6:
        return False
    try:
        bind_listener("::1").close()
    except OSError:
        return False
    return True
