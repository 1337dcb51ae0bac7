"""``Response.raw``: an httpcore response dressed as urllib3's ``HTTPResponse``.

Theory of operation: requests reads the body through ``raw.stream(amt,
decode_content=True)`` and looks at ``status``, ``reason``, ``headers`` and, for
cookies, ``_original_response.msg``; users and libraries call ``read``, ``tell``,
``release_conn`` and friends. The body comes from the pool's response stream one network
chunk at a time (``_pull``); decoded (or raw) bytes that a caller did not take yet wait
in ``_buffer`` from ``_offset`` on, so ``read(amt)`` returns exactly ``amt`` bytes until
the end, as urllib3 does. Decoding follows Content-Encoding (``_decoders``) only when
asked: requests opens urllib3 responses with ``decode_content=False``, so a bare
``raw.read()`` gives the bytes as sent, and ``iter_content`` asks for decoding. Errors
while reading become the urllib3 exceptions requests maps in ``iter_content``
(``_errors.BODY_ERRORS``). The connection goes back to the pool when the body ends,
and is closed by ``close()``/``release_conn()`` before that.
"""

from __future__ import annotations

import http
import io
import typing
from collections.abc import Callable, Iterator

from urllib3 import exceptions as u3
from urllib3._collections import HTTPHeaderDict

from ... import _exceptions as hc
from ..._models import Response
from ._decoders import Decoder, make_decoder
from ._errors import Endpoint, body_error

__all__ = ["HeaderMessage", "Joined", "OriginalResponse", "RawResponse", "make_headers"]

_VERSIONS = {b"HTTP/1.1": 11, b"HTTP/2": 20, b"HTTP/1.0": 10, b"HTTP/0.9": 9}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_COOKIE_HEADERS = frozenset({"set-cookie", "set-cookie2"})


Joined = dict[str, tuple[str, str]]


def make_headers(pairs: list[tuple[bytes, bytes]]) -> tuple[list[tuple[str, str]], Joined, bool]:
    """The fields as text in order; each name once, lower-cased, to (name as first
    spelled, values joined with ", " as urllib3 joins them); whether any sets a cookie."""
    fields: list[tuple[str, str]] = []
    joined: Joined = {}
    cookies = False
    for raw_name, raw_value in pairs:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        fields.append((name, value))
        lower = name.lower()
        seen = joined.get(lower)
        if seen is None:
            joined[lower] = (name, value)
        else:
            joined[lower] = (seen[0], f"{seen[1]}, {value}")
        if lower in _COOKIE_HEADERS:
            cookies = True
    return fields, joined, cookies


class HeaderMessage:
    """The header block as ``http.client.HTTPMessage`` presents it to ``http.cookiejar``
    and to code that reads ``raw._original_response.msg``: repeated fields kept apart."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def get_all(self, name: str, failobj: typing.Any = None) -> list[str] | typing.Any:
        name = name.lower()
        values = [value for key, value in self._fields if key.lower() == name]
        return values or failobj

    def get(self, name: str, failobj: typing.Any = None) -> str | typing.Any:
        name = name.lower()
        for key, value in self._fields:
            if key.lower() == name:
                return value
        return failobj

    def __getitem__(self, name: str) -> str | None:
        value: str | None = self.get(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def keys(self) -> list[str]:
        return [key for key, _ in self._fields]

    def values(self) -> list[str]:
        return [value for _, value in self._fields]

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._fields)

    def __str__(self) -> str:
        return "".join(f"{key}: {value}\r\n" for key, value in self._fields) + "\r\n"


class OriginalResponse:
    """What urllib3 keeps as ``_original_response`` (an ``http.client.HTTPResponse``),
    as far as it is read: ``msg``, ``status``, ``reason``, ``version``, ``isclosed()``.

    It is false when no field sets a cookie: requests extracts cookies only from a true
    one, so a response without cookies skips the cookie jar altogether.
    """

    __slots__ = ("_raw", "_with_cookies", "msg")

    def __init__(self, raw: RawResponse, fields: list[tuple[str, str]], with_cookies: bool) -> None:
        self._raw = raw
        self._with_cookies = with_cookies
        self.msg = HeaderMessage(fields)

    @property
    def headers(self) -> HeaderMessage:
        return self.msg

    @property
    def status(self) -> int:
        return self._raw.status

    @property
    def reason(self) -> str:
        return self._raw.reason

    @property
    def version(self) -> int:
        return self._raw.version

    def getheaders(self) -> list[tuple[str, str]]:
        return self.msg.items()

    def getheader(self, name: str, default: str | None = None) -> str | None:
        value: str | None = self.msg.get(name, default)
        return value

    def info(self) -> HeaderMessage:
        return self.msg

    def isclosed(self) -> bool:
        return self._raw.closed

    def __bool__(self) -> bool:
        return self._with_cookies


class RawResponse(io.IOBase):
    """urllib3's ``HTTPResponse`` interface over an httpcore streaming response."""

    # Read by code written against urllib3's response.
    auto_close = True
    enforce_content_length = True

    def __init__(
        self,
        response: Response,
        endpoint: Endpoint,
        request_method: str,
        retries: typing.Any = None,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        self._response = response
        self._endpoint = endpoint
        self.status: int = response.status_code
        version = response.extensions.get("http_version", b"HTTP/1.1")
        self.version: int = _VERSIONS.get(version, 11)
        self.version_string: str = version.decode("ascii")
        reason = response.extensions.get("reason_phrase", b"")
        if reason or self.version != 20:
            self.reason: str = reason.decode("latin-1")
        else:  # HTTP/2 has no reason phrase: give the standard one, as requests shows it
            try:
                self.reason = http.HTTPStatus(self.status).phrase
            except ValueError:
                self.reason = ""
        self._fields, self._joined, self._with_cookies = make_headers(response.headers)
        self._headers: HTTPHeaderDict | None = None
        self.decode_content = False
        self.retries = retries
        self._request_method = request_method
        self._on_release = on_release
        self._stream: typing.Any = response.stream
        self._buffer = b""
        self._offset = 0
        self._decoder: Decoder | None = None
        self._decoder_ready = False
        self._has_decoded = False
        self._read_bytes = 0
        self._body: bytes | None = None
        self._original: OriginalResponse | None = None
        self._expected = self._content_length()
        self.chunked = "chunked" in (self.header("transfer-encoding") or "").lower()

    @property
    def headers(self) -> HTTPHeaderDict:
        """urllib3's header dict, made on first use (requests itself never needs it)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = HTTPHeaderDict()
            for name, value in self._fields:
                headers.add(name, value)
        return headers

    @headers.setter
    def headers(self, value: HTTPHeaderDict) -> None:
        self._headers = value

    def header(self, lower_name: str) -> str | None:
        """One header's value (repeated fields joined), by its lower-case name."""
        headers = self._headers
        if headers is not None:
            value: str | None = headers.get(lower_name)
            return value
        item = self._joined.get(lower_name)
        return None if item is None else item[1]

    @property
    def joined_headers(self) -> Joined:
        """Lower-case name to (name, joined values): the layout of requests' header dict."""
        if self._headers is None:
            return self._joined
        joined: Joined = {}
        for name in self._headers:
            joined[name.lower()] = (name, self._headers[name])
        return joined

    def _content_length(self) -> int | None:
        if self._request_method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            return 0
        value = self.header("content-length")
        if value is None:
            return None
        if value.isdigit():
            return int(value)
        try:
            lengths = {int(part) for part in value.split(",")}
        except ValueError:
            return None
        return lengths.pop() if len(lengths) == 1 else None

    # -- the body, one network chunk at a time ----------------------------------------

    def _pull(self) -> bytes:
        """The next raw chunk from the network, or b"" at the end (then released)."""
        stream = self._stream
        if stream is None:
            return b""
        try:
            chunk: bytes = next(stream)
            while not chunk:  # b"" means the end here: skip empty pieces
                chunk = next(stream)
        except StopIteration:
            self._ended()
            return b""
        except hc.HTTPCoreError as exc:
            self._ended()
            expected = self._expected
            if expected is not None and isinstance(exc, hc.RemoteProtocolError):
                short = u3.IncompleteRead(self._read_bytes, expected - self._read_bytes)
                raise u3.ProtocolError(f"Connection broken: {short!r}", short) from exc
            raise body_error(exc, self._endpoint) from exc
        self._read_bytes += len(chunk)
        return chunk

    def _decode(self, data: bytes, flush: bool) -> bytes:
        if not self._decoder_ready:
            self._decoder_ready = True
            encoding = self.header("content-encoding")
            if encoding:
                self._decoder = make_decoder(encoding)
        decoder = self._decoder
        if decoder is None:
            return data
        try:
            out = decoder.decode(data) if data else b""
            if flush:
                out += decoder.flush()
        except Exception as exc:
            self._decoder = None
            encoding = self.header("content-encoding")
            raise u3.DecodeError(
                f"Received response with content-encoding: {encoding}, but failed to decode it.", exc
            ) from exc
        self._has_decoded = True
        return out

    def _next(self, decode: bool) -> bytes | None:
        """The next piece of output (maybe b"" while a decoder waits for more), or None
        at the end."""
        if self._stream is None:
            return None
        if not decode:
            if self._has_decoded:
                raise RuntimeError(
                    "Calling read(decode_content=False) is not supported after "
                    "read(decode_content=True) was called."
                )
            return self._pull() or None
        chunk = self._pull()
        out = self._decode(chunk, flush=not chunk)
        if not chunk and not out:
            return None
        return out

    def _take(self, amt: int) -> bytes:
        start = self._offset
        end = start + amt
        data = self._buffer[start:end]
        if end >= len(self._buffer):
            self._buffer = b""
            self._offset = 0
        else:
            self._offset = end
        return data

    # -- urllib3's reading interface ----------------------------------------------------

    def read(
        self, amt: int | None = None, decode_content: bool | None = None, cache_content: bool = False
    ) -> bytes:
        """Up to ``amt`` bytes (exactly ``amt`` until the end), or all that is left."""
        decode = self.decode_content if decode_content is None else decode_content
        if amt is not None and amt < 0:
            amt = None
        if amt is None:
            parts = [self._take(len(self._buffer))] if self._buffer else []
            while (out := self._next(decode)) is not None:
                parts.append(out)
            data = b"".join(parts)
            if cache_content:
                self._body = data
            return data
        if amt == 0:
            return b""
        buffered = len(self._buffer) - self._offset
        while buffered < amt:
            out = self._next(decode)
            if out is None:
                break
            if not out:
                continue
            if not buffered and len(out) <= amt:
                if len(out) == amt or self._stream is None:
                    return out
                self._buffer, self._offset = out, 0
            else:
                self._buffer = self._buffer[self._offset :] + out
                self._offset = 0
            buffered = len(self._buffer)
        return self._take(amt)

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        """What is buffered, else the next piece from the network; at most ``amt``."""
        decode = self.decode_content if decode_content is None else decode_content
        if amt is not None and amt < 0:
            amt = None
        if amt == 0:
            return b""
        if not self._buffer:
            while (out := self._next(decode)) is not None and not out:
                pass
            if out is None:
                return b""
            if amt is None or len(out) <= amt:
                return out
            self._buffer, self._offset = out, 0
        return self._take(len(self._buffer) if amt is None else amt)

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        """The body in pieces of at most ``amt`` bytes (``None``: any size), each as soon
        as it is there: urllib3 promises "up to", so nothing is held back to fill one."""
        if amt == 0:
            return
        while data := self.read1(amt, decode_content):
            yield data

    def read_chunked(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        """The body of a chunked response as it arrives, in pieces of at most ``amt``."""
        if not self.chunked:
            raise u3.ResponseNotChunked(
                "Response is not chunked. Header 'transfer-encoding: chunked' is missing."
            )
        while data := self.read1(amt, decode_content):
            yield data

    def readinto(self, buffer: typing.Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        """Lines of the decoded body, each with its b"\\n" (urllib3 iterates so)."""
        pending = b""
        for chunk in self.stream(decode_content=True):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending

    @property
    def data(self) -> bytes:
        """The whole (decoded as configured) body, read once and kept."""
        if self._body is not None:
            return self._body
        if self._stream is not None or self._buffer:
            return self.read(cache_content=True)
        return b""

    # -- connection and state -----------------------------------------------------------

    def release_conn(self) -> None:
        """Give the connection back: closed first if the body was not read to its end."""
        self._close_stream()

    def drain_conn(self) -> None:
        """Read and discard the rest of the body so the connection can be reused."""
        try:
            while self._pull():
                pass
        except (u3.HTTPError, OSError):
            pass

    def _ended(self) -> None:
        self._stream = None
        on_release = self._on_release
        if on_release is not None:
            self._on_release = None
            on_release()

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            finally:
                self._ended()

    def close(self) -> None:
        self._close_stream()

    @property
    def closed(self) -> bool:
        return self._stream is None

    def isclosed(self) -> bool:
        return self._stream is None

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("The response of an HTTPCoreAdapter has no file descriptor")

    def flush(self) -> None:
        return None

    def supports_chunked_reads(self) -> bool:
        return True

    def tell(self) -> int:
        """Body bytes received from the network so far (before any decoding)."""
        return self._read_bytes

    @property
    def length_remaining(self) -> int | None:
        if self._expected is None:
            return None
        return max(self._expected - self._read_bytes, 0)

    @property
    def connection(self) -> typing.Any:
        """The network stream while the response holds it, else None."""
        if self._stream is None:
            return None
        return self._response.extensions.get("network_stream")

    @property
    def url(self) -> str:
        return self._endpoint.url

    def geturl(self) -> str:
        return self._endpoint.url

    def get_redirect_location(self) -> str | typing.Literal[False] | None:
        if self.status in _REDIRECTS:
            return self.header("location")
        return False

    def getheaders(self) -> HTTPHeaderDict:
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        value = self.header(name.lower())
        return default if value is None else value

    @property
    def has_cookies(self) -> bool:
        """Whether a field sets a cookie (else requests' cookie extraction has nothing to do)."""
        return self._with_cookies

    def info(self) -> HTTPHeaderDict:
        return self.headers

    @property
    def _original_response(self) -> OriginalResponse:
        original = self._original
        if original is None:
            original = self._original = OriginalResponse(self, self._fields, self._with_cookies)
        return original

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.status}]>"
