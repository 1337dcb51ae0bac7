"""Reporting one step to a request's ``"trace"`` callback (names in ``httpcore/_trace.py``).

Only called when the request has a callback: the untraced path never comes here.
"""

from __future__ import annotations

import ssl
import typing

from .._backends.base import AsyncNetworkStream
from .._trace import COMPLETE, FAILED, START_TLS, STARTED

__all__ = ["complete_or_close", "start_tls_traced", "traced"]


async def traced(
    trace: typing.Any,
    step: str,
    info: dict[str, typing.Any],
    func: typing.Callable[..., typing.Any],
    *args: typing.Any,
    opens: bool = False,
) -> typing.Any:
    """Run ``func(*args)`` as ``step``: ``.started`` with ``info``, then ``.complete`` with
    its return value or ``.failed`` with the exception it raised (which propagates).
    ``opens``: it returns a network stream, closed if ``.complete`` raises."""
    await trace(step + STARTED, info)
    try:
        result = await func(*args)
    except BaseException as exc:
        await trace(step + FAILED, {"exception": exc})
        raise
    if opens:
        await complete_or_close(trace, step, result)
    else:
        await trace(step + COMPLETE, {"return_value": result})
    return result


async def complete_or_close(trace: typing.Any, step: str, stream: AsyncNetworkStream) -> None:
    """``step.complete`` for a network stream just opened; a callback that raises (a
    cancellation, say) closes it, since the caller never gets it."""
    try:
        await trace(step + COMPLETE, {"return_value": stream})
    except BaseException:
        await stream.aclose()
        raise


async def start_tls_traced(
    trace: typing.Any,
    stream: AsyncNetworkStream,
    ssl_context: ssl.SSLContext,
    server_hostname: str,
    timeout: float | None,
) -> AsyncNetworkStream:
    """``stream.start_tls`` as the START_TLS step, reported with httpcore 1.x's keys."""
    info = {"ssl_context": ssl_context, "server_hostname": server_hostname, "timeout": timeout}
    tls_stream: AsyncNetworkStream = await traced(
        trace, START_TLS, info, stream.start_tls, ssl_context, server_hostname, timeout, opens=True
    )
    return tls_stream
