"""What h11 leaves to its caller about a response: limits it does not check, framing it
resolves one way where a peer might resolve it another, and its errors as ours.

Theory of operation: h11 bounds a response head only while it is incomplete
(``max_incomplete_event_size``); a head that arrived whole in a few reads could be larger,
so ``check_head`` measures the parsed head against MAX_RESPONSE_HEAD_SIZE,
MAX_RESPONSE_HEADERS and MAX_RESPONSE_LINE. ``has_both_framings`` finds a head framed
both by Content-Length and by chunks, which h11 reads by the chunks but a connection
must not be reused after. ``map_h11_error`` turns h11's exceptions into ours, naming the
limit when the error is h11's buffer bound.
"""

from __future__ import annotations

import typing

import h11

from ._config import MAX_RESPONSE_HEAD_SIZE, MAX_RESPONSE_HEADERS, MAX_RESPONSE_LINE
from ._exceptions import HTTPCoreError, LocalProtocolError, RemoteProtocolError

__all__ = ["check_head", "has_both_framings", "map_h11_error"]


def has_both_framings(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a head has both Content-Length and Transfer-Encoding."""
    content_length = transfer_encoding = False
    for name, _ in headers:
        size = len(name)  # a cheap filter before lower-casing
        if size == 14 and name.lower() == b"content-length":
            content_length = True
        elif size == 17 and name.lower() == b"transfer-encoding":
            transfer_encoding = True
    return content_length and transfer_encoding


def check_head(event: typing.Any) -> None:
    """Refuse a head past MAX_RESPONSE_HEAD_SIZE, MAX_RESPONSE_HEADERS or MAX_RESPONSE_LINE
    (sizes as h11 parsed them: less the whitespace it stripped)."""
    headers = getattr(event, "headers", None)
    if headers is None:
        return
    if len(headers) > MAX_RESPONSE_HEADERS:
        raise RemoteProtocolError(f"The response head has more than {MAX_RESPONSE_HEADERS} header fields")
    line = len(event.reason) + 13  # "HTTP/1.1 200 " and no CRLF
    size = line + 4  # the CRLFs after the status line and after the headers
    longest = line
    for name, value in headers.raw_items():
        line = len(name) + len(value) + 2  # ": "
        size += line + 2
        if line > longest:
            longest = line
    if size > MAX_RESPONSE_HEAD_SIZE:
        raise RemoteProtocolError(f"The response head is larger than {MAX_RESPONSE_HEAD_SIZE} bytes")
    if longest > MAX_RESPONSE_LINE:
        raise RemoteProtocolError(f"A line of the response head is longer than {MAX_RESPONSE_LINE} bytes")


def map_h11_error(exc: h11.ProtocolError, in_body: bool = False) -> HTTPCoreError:
    if isinstance(exc, h11.RemoteProtocolError):
        if str(exc) == "Receive buffer too long":  # h11's max_incomplete_event_size
            if in_body:
                return RemoteProtocolError(
                    f"A chunk-size line or the trailers of the response are larger than"
                    f" {MAX_RESPONSE_HEAD_SIZE} bytes"
                )
            return RemoteProtocolError(f"The response head is larger than {MAX_RESPONSE_HEAD_SIZE} bytes")
        return RemoteProtocolError(str(exc) or "The server sent a malformed response")
    return LocalProtocolError(str(exc) or "The request is not valid HTTP/1.1")
