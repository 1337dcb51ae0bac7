"""Reporting one step to a request's ``"trace"`` callback (names in ``httpcore/_trace.py``).

Only called when the request has a callback: the untraced path never comes here.
"""

from __future__ import annotations

import typing

from .._trace import COMPLETE, FAILED, STARTED

__all__ = ["traced"]


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
