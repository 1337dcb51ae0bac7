"""Reporting one step to a request's ``"trace"`` callback (names in ``httpcore/_trace.py``).

Only called when the request has a callback: the untraced path never comes here.
"""

from __future__ import annotations

import ssl
import typing

from .._backends.base import AsyncNetworkStream
from .._trace import COMPLETE, FAILED, START_TLS, STARTED

__all__ = ["start_tls_traced", "traced"]


async def traced(
    trace: typing.Any,
    step: str,
    info: dict[str, typing.Any],
    func: typing.Callable[..., typing.Any],
    *args: typing.Any,
) -> typing.Any:
    """Run ``func(*args)`` as ``step``: ``.started`` with ``info``, then ``.complete`` with
    its return value or ``.failed`` with the exception it raised (which propagates)."""
    await trace(step + STARTED, info)
    try:
        result = await func(*args)
    except BaseException as exc:
        await trace(step + FAILED, {"exception": exc})
        raise
    await trace(step + COMPLETE, {"return_value": result})
    return result


async def start_tls_traced(
    trace: typing.Any,
    stream: AsyncNetworkStream,
    ssl_context: ssl.SSLContext,
    server_hostname: str,
    timeout: float | None,
) -> AsyncNetworkStream:
    """``stream.start_tls`` as the START_TLS step. A ``.complete`` callback that raises
    (a cancellation, say) closes the new stream: its caller never gets to."""
    info = {"ssl_context": ssl_context, "server_hostname": server_hostname, "timeout": timeout}
    await trace(START_TLS + STARTED, info)
    try:
        tls_stream = await stream.start_tls(ssl_context, server_hostname, timeout)
    except BaseException as exc:
        await trace(START_TLS + FAILED, {"exception": exc})
        raise
    try:
        await trace(START_TLS + COMPLETE, {"return_value": tls_stream})
    except BaseException:
        await tls_stream.aclose()
        raise
    return tls_stream
