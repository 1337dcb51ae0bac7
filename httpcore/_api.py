"""``httpcore.request()``: one request on a throw-away pool, for scripts and the REPL."""

from __future__ import annotations

import ssl
import typing

from ._config import Timeout
from ._models import URL, HeaderTypes, Response
from ._sync.connection_pool import ConnectionPool

__all__ = ["request"]


def request(
    method: bytes | str,
    url: URL | bytes | str,
    *,
    headers: HeaderTypes = None,
    body: bytes | typing.Iterable[bytes] | None = None,
    timeout: Timeout | float | None = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    extensions: dict[str, typing.Any] | None = None,
) -> Response:
    """Send one request with a new pool, read the whole body, close the connection."""
    with ConnectionPool(ssl_context=ssl_context, timeout=timeout) as pool:
        return pool.request(method, url, headers=headers, body=body, extensions=extensions)
