"""Exchanges replayed from h11's own record (``httpcore/_h11_replay.py``) behave exactly
as h11 does: the same seeded sequence of requests and responses (repeated heads, the
same head with other bodies, extra, missing and split bytes, mutations, 1xx, chunked,
close) goes through a pool with the replay and one without, sync and async, and
everything the caller and the server see must be identical."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import typing
from collections.abc import Iterator

import h11
import pytest

import httpcore
from httpcore import _h11_replay
from tests.fuzzing.h1 import _mutate
from tests.fuzzing.memory import RESET, AsyncMemoryBackend, MemoryBackend, Peer
from tests.servers.raw import chunked, response

URL = "http://replay.test"
STEPS = 1500
HEADERS = [(b"X-Kind", b"a"), (b"Server", b"nginx")]
BASES = [
    response(200, b"Hello world!", HEADERS),
    response(200, b"", HEADERS),
    response(404, b"not here", HEADERS),
    response(204, headers=[(b"Content-Length", b"5")], content_length=False),
    response(304, headers=HEADERS),
]
CL5 = [(b"Content-Length", b"5")]
# method, path, body (bytes, or a list of chunks to stream), extra headers
REQUESTS: list[tuple[str, str, bytes | list[bytes] | None, list[tuple[bytes, bytes]]]] = [
    ("GET", "/same", None, []),
    ("GET", "/same", None, []),
    ("GET", "/other", None, []),
    ("HEAD", "/same", None, []),
    ("POST", "/same", b"payload", []),
    ("GET", "/close", None, [(b"Connection", b"close")]),
    ("POST", "/upload", [b"ab", b"", b"cde"], CL5),  # streamed, as long as it says
    ("POST", "/upload", [b"abcde"], CL5),
    ("POST", "/upload", b"abcde", CL5),  # the same head, the body as bytes
    ("POST", "/upload", [b"ab", b"cdef"], CL5),  # too long: refused
    ("POST", "/upload", [b"ab"], CL5),  # too short: refused
    ("PUT", "/upload", [b"", b""], []),  # streams nothing: no body
    ("PUT", "/chunked", [b"ab", b"cd"], []),  # chunked: never replayed
]


@pytest.fixture(autouse=True)
def fresh_records() -> Iterator[None]:
    """Each run starts with no record, so both runs see the same first exchanges."""
    _h11_replay.request_head.cache_clear()
    yield
    _h11_replay.request_head.cache_clear()
    _h11_replay.ENABLED = True


Answer = tuple[list[typing.Any], bool, bool]


def _answer(rng: random.Random) -> Answer:
    """One response as the pieces the client will read, whether the server then closes,
    and whether it answers on the request head alone and then reads no more (as a
    server refusing an upload does)."""
    base = rng.choice(BASES)
    head_end = base.find(b"\r\n\r\n") + 4
    kind = rng.choices(
        ["same", "body", "extra", "short", "split", "mutated", "1xx", "closing", "chunked", "reset", "early"],
        [40, 12, 6, 4, 10, 12, 4, 4, 4, 3, 4],
    )[0]
    data = base
    if kind == "body":  # the same head, another body of the same length
        data = base[:head_end] + bytes(rng.choice(b"xyz") for _ in range(len(base) - head_end))
    elif kind == "extra":
        data = base + rng.choice([b"junk", b"\r\n", base])
    elif kind == "short" and len(base) > head_end:
        data = base[:-1]
    elif kind == "mutated":
        mutable = bytearray(base)
        _mutate(rng, mutable)
        data = bytes(mutable)
    elif kind == "1xx":
        data = b"HTTP/1.1 100 Continue\r\n\r\n" + base
    elif kind == "closing":
        data = base[: head_end - 2] + b"Connection: close\r\n\r\n" + base[head_end:]
    elif kind == "chunked":
        body = base[head_end:]
        data = response(
            200, chunked(body[:3], body[3:]), [(b"Transfer-Encoding", b"chunked")], content_length=False
        )
    pieces: list[typing.Any] = [data]
    if kind == "reset":  # the connection is reset after the response: the next write fails
        pieces.append(RESET)
    if kind == "split" and len(data) > 1:
        cut = rng.randrange(1, len(data))
        pieces = [data[:cut], data[cut:]]
    return [piece for piece in pieces if piece], rng.random() < 0.05 or kind == "short", kind == "early"


class ScriptedPeer(Peer):
    """Answers each request it reads with the next response of a shared script, and
    keeps every byte it was sent."""

    def __init__(self, script: Iterator[Answer], received: list[bytes]) -> None:
        super().__init__()
        self.script = script
        self.buffer = bytearray()
        self.log = received
        self.answer: Answer | None = None  # for the request whose head was read
        self.refusing = False  # answered early: every later write fails

    def write(self, data: bytes) -> None:
        if self.refusing:
            self.log.append(b"refused:" + data)
            raise httpcore.WriteError("memory: the server stopped reading")
        super().write(data)

    def received(self, data: bytes) -> None:
        self.log.append(data)
        self.buffer += data
        while not (self.ended or self.dead or self.refusing):
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if self.answer is None:
                self.answer = next(self.script)
                pieces, close, early = self.answer
                if early:
                    self.outgoing += pieces
                    self.ended = close
                    self.refusing = True
                    return
            head = bytes(self.buffer[: end + 4]).lower()
            marker = head.find(b"\r\ncontent-length:")
            length = 0 if marker < 0 else int(head[marker + 17 : head.find(b"\r\n", marker + 2)])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            pieces, close, _ = self.answer
            self.answer = None
            self.outgoing += pieces
            self.ended = close


def _script(seed: int) -> Iterator[Answer]:
    rng = random.Random(seed)
    while True:
        yield _answer(rng)


def _request(index: int, seed: int, asynchronous: bool) -> httpcore.Request:
    method, path, body, headers = REQUESTS[random.Random(seed * 100_003 + index).randrange(len(REQUESTS))]
    content: typing.Any = body
    if isinstance(body, list):
        content = _async_chunks(body) if asynchronous else iter(body)
    return httpcore.Request(method, URL + path, headers=headers, content=content)


async def _async_chunks(chunks: list[bytes]) -> typing.AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _outcome(response: httpcore.Response | None, error: BaseException | None) -> tuple[typing.Any, ...]:
    if error is not None:
        return ("error", type(error).__name__, str(error))
    assert response is not None
    return (
        response.status,
        response.headers,
        response.content,
        response.extensions["http_version"],
        response.extensions["reason_phrase"],
    )


def run_sync(seed: int, enabled: bool) -> tuple[list[typing.Any], list[bytes], int]:
    _h11_replay.ENABLED = enabled
    _h11_replay.request_head.cache_clear()
    received: list[bytes] = []
    script = _script(seed)
    backend = MemoryBackend(lambda: ScriptedPeer(script, received))

    def one(pool: httpcore.ConnectionPool, index: int) -> tuple[typing.Any, ...]:
        try:
            response = pool.handle_request(_request(index, seed, False))
            response.read()
        except httpcore.HTTPCoreError as exc:
            return _outcome(None, exc)
        return _outcome(response, None)

    with httpcore.ConnectionPool(network_backend=backend, max_connections=1, retries=0) as pool:
        outcomes = [one(pool, index) for index in range(STEPS)]
    return outcomes, received, len(backend.streams)


def run_async(seed: int, enabled: bool) -> tuple[list[typing.Any], list[bytes], int]:
    _h11_replay.ENABLED = enabled
    _h11_replay.request_head.cache_clear()
    received: list[bytes] = []
    script = _script(seed)
    backend = AsyncMemoryBackend(lambda: ScriptedPeer(script, received))

    async def one(pool: httpcore.AsyncConnectionPool, index: int) -> tuple[typing.Any, ...]:
        try:
            response = await pool.handle_async_request(_request(index, seed, True))
            await response.aread()
        except httpcore.HTTPCoreError as exc:
            return _outcome(None, exc)
        return _outcome(response, None)

    async def main() -> list[typing.Any]:
        async with httpcore.AsyncConnectionPool(
            network_backend=backend, max_connections=1, retries=0
        ) as pool:
            return [await one(pool, index) for index in range(STEPS)]

    return asyncio.run(main()), received, len(backend.streams)


def count_replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many responses came from a replay, sync and async."""
    from httpcore._async.http11 import AsyncHTTP11Connection
    from httpcore._sync.http11 import HTTP11Connection

    count = [0]
    for cls in (AsyncHTTP11Connection, HTTP11Connection):
        original = cls._replayed

        def counted(self: typing.Any, *args: typing.Any, original: typing.Any = original) -> typing.Any:
            count[0] += 1
            return original(self, *args)

        monkeypatch.setattr(cls, "_replayed", counted)
    return count


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])
def test_replay_behaves_as_h11(
    run: typing.Callable[[int, bool], typing.Any], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    replays = count_replays(monkeypatch)
    replayed = run(seed, True)
    assert replays[0] > STEPS // 10, "the sequence hardly exercised the replay"
    replayed_count = replays[0]
    plain = run(seed, False)
    assert replays[0] == replayed_count, "the switch did not turn the replay off"
    for index, (got, want) in enumerate(zip(replayed[0], plain[0], strict=True)):
        assert got == want, f"step {index} differs with the replay (seed {seed})"
    assert replayed[1] == plain[1], "the server was sent other bytes"
    assert replayed[2] == plain[2], "another number of connections was opened"


def test_an_idle_h11_connection_is_the_same_after_a_cycle() -> None:
    """The replay's premise, checked on h11 itself (fails loudly if h11 changes): a
    keep-alive exchange framed by Content-Length takes an h11 client connection that
    already read a response back to the very state it started in."""

    def state(h: h11.Connection) -> tuple[typing.Any, ...]:
        return (
            h.our_state,
            h.their_state,
            h.their_http_version,
            h.client_is_waiting_for_100_continue,
            h.they_are_waiting_for_100_continue,
            h.trailing_data,
            type(getattr(h, "_reader", None)),
            type(getattr(h, "_writer", None)),
        )

    h = h11.Connection(h11.CLIENT)
    states = []
    for _ in range(3):
        h.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "2")]))
        h.send(h11.Data(data=b"hi"))
        h.send(h11.EndOfMessage())
        h.receive_data(BASES[0])
        while type(h.next_event()) is not h11.EndOfMessage:
            pass
        h.start_next_cycle()
        states.append(state(h))
    assert states[0] == states[1] == states[2]
    assert states[0][:3] == (h11.IDLE, h11.IDLE, b"1.1")


def test_a_backend_reading_bytearrays_is_replayed_with_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A network backend of the caller's may read any bytes-like object: the replay
    still matches it, and the caller gets bytes."""
    replays = count_replays(monkeypatch)

    def forever() -> Iterator[Answer]:
        while True:
            yield [bytearray(BASES[0])], False, False

    script = forever()
    backend = MemoryBackend(lambda: ScriptedPeer(script, []))
    with httpcore.ConnectionPool(network_backend=backend) as pool:
        bodies = [pool.request("GET", URL + "/").content for _ in range(3)]
    assert bodies == [b"Hello world!"] * 3
    assert all(type(body) is bytes for body in bodies)
    # h11 writes the first request, then reads the second's response (the cycle is
    # kept); the third is replayed.
    assert replays[0] == 1


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("1", True), ("0", False), (" 0 ", False)])
def test_the_replay_switch_from_the_environment(value: str | None, enabled: bool) -> None:
    """HTTPCORE_H11_REPLAY=0 sends every exchange through h11."""
    env = {key: item for key, item in os.environ.items() if key != "HTTPCORE_H11_REPLAY"}
    if value is not None:
        env["HTTPCORE_H11_REPLAY"] = value
    code = "from httpcore import _h11_replay; print(_h11_replay.ENABLED)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == str(enabled), out.stderr
