"""Adversarial HTTP/1.1 responses, generated from a seed.

Each case mutates a valid response (flipped, inserted and deleted bytes, truncation,
extra bytes, conflicting lengths, broken chunking, 1xx noise, a huge header block) and
says how it is delivered (then close, kept open, reset, drip, stall past the read
timeout), which method asks for it and how much of its body the caller reads. The same
cases drive the real-socket fuzz (tests/test_fuzz_http11.py) and the in-memory one
(tests/fuzzing/memory.py).
"""

from __future__ import annotations

import dataclasses
import random
import typing

from tests.fuzzing.memory import RESET, STALL, Peer
from tests.servers.raw import chunked, ok, response

__all__ = ["Case", "H1Peer", "make_cases"]

INTERESTING = b"\r\n:; \t\x00\x7f\x80\xff0129afAFzZ-+,/"


@dataclasses.dataclass
class Case:
    seed: int
    index: int
    data: bytes
    delivery: str  # "close", "keep", "reset", "drip" or "stall"
    method: str
    read_limit: int | None  # stream the body and stop after this many bytes

    def __str__(self) -> str:
        return (
            f"case {self.index} (seed {self.seed}): {self.method} {self.delivery} "
            f"read_limit={self.read_limit} data={self.data[:300]!r}"
        )


def _body(rng: random.Random) -> bytes:
    return bytes(rng.choice(b"abcdefghij0123456789 \r\n") for _ in range(rng.randrange(0, 120)))


def _valid_response(rng: random.Random) -> bytes:
    body = _body(rng)
    headers = [(b"X-Fuzz", b"%d" % rng.randrange(1000))] if rng.random() < 0.5 else []
    kind = rng.randrange(7)
    if kind == 0:
        return response(200, body, headers)
    if kind == 1:
        pieces = [body[i : i + 17] for i in range(0, len(body), 17)]
        trailers = [(b"X-Trailer", b"1")] if rng.random() < 0.3 else None
        framed = chunked(*pieces, trailers=trailers)
        return response(200, framed, [*headers, (b"Transfer-Encoding", b"chunked")], content_length=False)
    if kind == 2:
        return response(200, body, [*headers, (b"Connection", b"close")], content_length=False)
    if kind == 3:
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(
            201, body, headers
        )
    if kind == 4:
        return response(rng.choice([204, 304]), headers=[(b"Content-Length", b"5")], content_length=False)
    if kind == 5:
        return response(200, body, headers, version=b"HTTP/1.0")
    return response(rng.choice([301, 404, 500, 599]), body, headers, reason=rng.choice([b"", b"Odd Reason"]))


def _mutate(rng: random.Random, data: bytearray) -> None:
    kind = rng.randrange(12)
    position = rng.randrange(len(data) + 1)
    head_end = data.find(b"\r\n\r\n")
    if kind == 0 and data:  # flip a bit
        index = min(position, len(data) - 1)
        data[index] ^= 1 << rng.randrange(8)
    elif kind == 1 and data:  # replace a byte
        data[min(position, len(data) - 1)] = rng.choice(INTERESTING)
    elif kind == 2:  # insert bytes
        data[position:position] = bytes(rng.choice(INTERESTING) for _ in range(rng.randrange(1, 6)))
    elif kind == 3:  # delete bytes
        del data[position : position + rng.randrange(1, 10)]
    elif kind == 4:  # truncate
        del data[position:]
    elif kind == 5:  # extra bytes after the response
        data += rng.choice([ok(b"smuggled"), b"junk", b"\r\n", b"0\r\n\r\n", _body(rng)])
    elif kind == 6 and head_end > 0:  # a conflicting or odd content-length
        value = rng.choice([b"%d" % rng.randrange(300), b"-1", b"1e3", b"", b"5, 6", b"99999999999999999999"])
        data[head_end:head_end] = b"\r\nContent-Length: " + value
    elif kind == 7 and head_end > 0:  # transfer-encoding too
        value = rng.choice([b"chunked", b"gzip", b"chunked, chunked", b"identity"])
        data[head_end:head_end] = b"\r\nTransfer-Encoding: " + value
    elif kind == 8:  # break a chunk-size line
        index = data.find(b"\r\n", max(head_end, 0) + 4)
        if index > 0:
            data[index:index] = rng.choice([b"zz", b";ext", b" ", b"\x00", b"-", b"ffffffffffffffffff"])
    elif kind == 9 and head_end > 0:  # duplicate a header line
        lines = bytes(data[:head_end]).split(b"\r\n")
        line = rng.choice(lines)
        data[head_end:head_end] = b"\r\n" + line
    elif kind == 10 and head_end > 0 and rng.random() < 0.2:  # a huge header block
        data[head_end:head_end] = b"\r\nX-Huge: " + b"h" * rng.randrange(90_000, 200_000)
    elif kind == 11:  # noise before the response
        data[:0] = rng.choice(
            [
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 199 Odd\r\n\r\n",
                b"\r\n",
                b"HTTP/1.1 101 Up\r\n\r\n",
            ]
        )


def make_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        data = bytearray(_valid_response(rng))
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            _mutate(rng, data)
        delivery = rng.choices(["close", "keep", "reset", "drip", "stall"], [50, 20, 12, 13, 5])[0]
        if len(data) > 60_000 and delivery == "drip":
            delivery = "close"
        method = rng.choices(["GET", "HEAD", "POST"], [70, 15, 15])[0]
        read_limit = rng.choice([None, None, None, 0, 1, 10, 50])
        cases.append(Case(seed, index, bytes(data), delivery, method, read_limit))
    return cases


class H1Peer(Peer):
    """An in-memory HTTP/1.1 server: ``/good/<token>`` gets ``good:<token>``, ``/fuzz/<i>``
    gets case i delivered its way (see tests/fuzzing/memory.py)."""

    def __init__(self, cases: list[Case]) -> None:
        super().__init__()
        self.cases = cases
        self.buffer = bytearray()

    def received(self, data: bytes) -> None:
        self.buffer += data
        while not (self.ended or self.dead):
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 4])
            marker = head.lower().find(b"\r\ncontent-length:")
            length = 0 if marker < 0 else int(head[marker + 17 : head.find(b"\r\n", marker + 2)])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.answer(head.split(b" ", 2)[1])

    def answer(self, target: bytes) -> None:
        if target.startswith(b"/good/"):
            self.outgoing.append(ok(b"good:" + target[6:]))
            return
        case = self.cases[int(target.rsplit(b"/", 1)[1])]
        data = case.data
        half = len(data) // 2
        step = max(1, len(data) // 16)
        # A socket never reads b"" but at the end: empty pieces are not sent.
        pieces: list[typing.Any] = {  # type: ignore[assignment]
            "keep": [data],
            "reset": [data, RESET],
            "drip": [data[i : i + step] for i in range(0, len(data), step)],
            "stall": [data[:half], STALL, data[half:]],
            "close": [data],
        }[case.delivery]
        self.outgoing += [piece for piece in pieces if piece != b""]
        self.ended = case.delivery not in ("keep", "reset")
