"""Streaming decoders for the response Content-Encoding, as requests expects them done
by its transport.

Theory of operation: ``make_decoder(header)`` reads the Content-Encoding header and
returns a decoder, or None when there is nothing (known) to undo. Each decoder takes
body bytes as they arrive (``decode``) and gives what it can decode so far; ``flush``
at the end gives the rest. Several codings ("gzip, br") are undone in reverse order of
application by a chain. An unknown coding leaves the body as it is, as urllib3 does.
gzip decodes every member of a multi-member body; "deflate" accepts both zlib-wrapped
and raw deflate, since servers send either. br and zstd exist only when the optional
``brotli`` (or ``brotlicffi``) and ``zstandard`` packages are installed.
"""

from __future__ import annotations

import typing
import zlib
from collections.abc import Callable

__all__ = ["DECODERS", "Decoder", "make_decoder"]


class Decoder(typing.Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Deflate:
    """zlib-wrapped deflate, falling back to raw deflate when the first bytes say so."""

    __slots__ = ("_first", "_obj", "_started")

    def __init__(self) -> None:
        self._obj = zlib.decompressobj()
        self._first = b""
        self._started = False

    def decode(self, data: bytes) -> bytes:
        if self._started:
            return self._obj.decompress(data)
        # Until output appears, the bytes so far are fed again to a fresh decompressor,
        # so the fallback to raw deflate sees them all.
        self._first += data
        try:
            self._obj = zlib.decompressobj()
            out = self._obj.decompress(self._first)
        except zlib.error:
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(self._first)
        if out:
            self._started = True
            self._first = b""
        return out

    def flush(self) -> bytes:
        return self._obj.flush()


class _Gzip:
    """gzip, every member of a multi-member body; trailing garbage after a complete
    member is ignored, as urllib3 does."""

    __slots__ = ("_done", "_obj")

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._done = False

    def decode(self, data: bytes) -> bytes:
        out = b""
        while data and not self._done:
            try:
                out += self._obj.decompress(data)
            except zlib.error:
                if out or self._obj.eof:
                    # A complete member then bytes that are not gzip: stop here.
                    self._done = True
                    return out
                raise
            data = self._obj.unused_data
            if not data:
                return out
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return out

    def flush(self) -> bytes:
        return self._obj.flush()


class _Chain:
    """Several codings, undone in reverse order of application."""

    __slots__ = ("_decoders",)

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> bytes:
        for decoder in self._decoders:
            data = decoder.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for decoder in self._decoders:
            data = decoder.decode(data) + decoder.flush() if data else decoder.flush()
        return data


DECODERS: dict[str, Callable[[], Decoder]] = {"gzip": _Gzip, "x-gzip": _Gzip, "deflate": _Deflate}

try:  # pragma: no branch
    try:
        import brotli
    except ImportError:  # pragma: no cover - brotlicffi has the same interface
        import brotlicffi as brotli
except ImportError:  # pragma: no cover - brotli is installed for the tests
    pass
else:

    class _Brotli:
        __slots__ = ("_obj",)

        def __init__(self) -> None:
            self._obj = brotli.Decompressor()

        def decode(self, data: bytes) -> bytes:
            process = getattr(self._obj, "process", None) or self._obj.decompress
            return bytes(process(data)) if data else b""

        def flush(self) -> bytes:
            return b""

    DECODERS["br"] = _Brotli

try:
    import zstandard
except ImportError:  # pragma: no cover - zstandard is installed for the tests
    pass
else:

    class _Zstd:
        """zstd, every frame of a multi-frame body."""

        __slots__ = ("_obj",)

        def __init__(self) -> None:
            self._obj = zstandard.ZstdDecompressor().decompressobj()

        def decode(self, data: bytes) -> bytes:
            out = b""
            while data:
                out += self._obj.decompress(data)
                data = self._obj.unused_data if self._obj.eof else b""
                if data:
                    self._obj = zstandard.ZstdDecompressor().decompressobj()
            return out

        def flush(self) -> bytes:
            if not self._obj.eof:
                raise zstandard.ZstdError("zstd data is incomplete")
            return b""

    DECODERS["zstd"] = _Zstd


def make_decoder(content_encoding: str) -> Decoder | None:
    """The decoder for a Content-Encoding value, or None if none applies."""
    names = [name.strip().lower() for name in content_encoding.split(",")]
    decoders = [DECODERS[name]() for name in reversed(names) if name in DECODERS]
    if not decoders:
        return None
    if len(decoders) == 1:
        return decoders[0]
    return _Chain(decoders)
