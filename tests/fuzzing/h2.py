"""Adversarial HTTP/2 frame sequences, generated from a seed, and the peer that sends them.

A case is what the server does once the fuzz request's stream is complete: a sequence
of steps, most of them made by a server-side ``h2`` connection (so they are well-formed
on their own: heads, 1xx, data, trailers, resets, GOAWAY, SETTINGS, pings, window
updates) but put together in orders and numbers no server should use, some of them then
mutated on the wire (bits flipped, bytes cut or doubled), and some raw frames with
random types, flags, stream ids and payloads; the connection may then end, reset or
stall. ``H2Peer`` plays the server of one connection in memory (tests/fuzzing/memory.py):
``/good/<token>`` gets ``good:<token>``, ``/fuzz/<i>`` gets case i. When the client's
frames no longer make sense to it (after what a case broke), it closes the connection,
as a real server would.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import typing

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.fuzzing.memory import RESET, STALL, Peer

__all__ = ["Case", "H2Peer", "make_cases"]

Step = tuple[typing.Any, ...]


@dataclasses.dataclass
class Case:
    seed: int
    index: int
    steps: list[Step]
    method: str
    read_limit: int | None

    def __str__(self) -> str:
        return (
            f"HTTP/2 case {self.index} (seed {self.seed}): {self.method} read_limit={self.read_limit} "
            f"steps={self.steps!r:.400}"
        )


_SETTINGS = [
    (SettingCodes.MAX_CONCURRENT_STREAMS, [0, 1, 2, 100]),
    (SettingCodes.INITIAL_WINDOW_SIZE, [0, 1, 65535, 2**31 - 1, 2**31]),
    (SettingCodes.MAX_FRAME_SIZE, [16384, 16383, 2**24 - 1, 2**24]),
    (SettingCodes.HEADER_TABLE_SIZE, [0, 4096, 2**20]),
    (SettingCodes.ENABLE_PUSH, [0, 1, 2]),
    (SettingCodes.MAX_HEADER_LIST_SIZE, [0, 100]),
]


def _step(rng: random.Random) -> Step:
    kind = rng.choices(
        ["head", "info", "data", "trailers", "reset", "goaway", "settings", "ping", "window", "raw"],
        [20, 4, 20, 4, 5, 4, 5, 3, 4, 10],
    )[0]
    if kind == "head":
        status = rng.choice([b"200", b"204", b"404", b"500", b"099", b"abc", b"2000", b""])
        headers = rng.choice([[], [(b"x-a", b"1")], [(b"content-length", rng.choice([b"0", b"3", b"x"]))]])
        return ("head", status, headers, rng.random() < 0.3)
    if kind == "data":
        return ("data", rng.choice([0, 1, 10, 1000, 20_000, 70_000]), rng.random() < 0.5)
    if kind == "reset":
        return (
            "reset",
            rng.choice([ErrorCodes.NO_ERROR, ErrorCodes.CANCEL, ErrorCodes.REFUSED_STREAM, 0xFF]),
        )
    if kind == "goaway":
        return (
            "goaway",
            rng.choice([-2, 0, 2]),
            rng.choice([ErrorCodes.NO_ERROR, ErrorCodes.PROTOCOL_ERROR]),
        )
    if kind == "settings":
        code, values = rng.choice(_SETTINGS)
        return ("settings", code, rng.choice(values))
    if kind == "window":
        return ("window", rng.choice([True, False]), rng.choice([1, 65535, 2**31 - 1]))
    if kind == "raw":
        return (
            "raw",
            rng.randrange(0, 12),
            rng.randrange(256),
            rng.choice(["0", "s", "idle", "1", "2", "max"]),
            bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 8, 9, 30]))),
            rng.random() < 0.8,  # the length field tells the truth
        )
    return (kind,)


def _breaks_framing(step: Step) -> bool:
    mutate = step[-1] if isinstance(step[-1], tuple) else None
    if mutate is not None and mutate[1] != 2:  # all but doubling whole frames
        return True
    return step[0] == "raw" and not step[5]


def make_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        steps: list[Step] = []
        if rng.random() < 0.5:  # a sane start: a head, maybe some data
            steps.append(("head", b"200", [], False))
            if rng.random() < 0.5:
                steps.append(("data", rng.choice([1, 100, 5000]), False))
        steps += [_step(rng) for _ in range(rng.choice([1, 1, 2, 3, 5]))]
        for position in range(len(steps)):
            if rng.random() < 0.1:
                steps[position] += (("mutate", rng.randrange(4), rng.random()),)
        ending = rng.choices(["end", "open", "eof", "tcp-reset", "stall"], [40, 25, 15, 10, 10])[0]
        if any(_breaks_framing(step) for step in steps):
            # Past a frame whose length lies, the client cannot tell where frames start:
            # it waits for the rest of one that never comes (till the read timeout). The
            # server then hangs up, as one that lost track of its own framing would.
            ending = "eof"
        if ending == "end":
            steps.append(("data", rng.choice([0, 3]), True))
        elif ending != "open":
            steps.append((ending,))
        method = rng.choices(["GET", "HEAD", "POST"], [70, 10, 20])[0]
        read_limit = rng.choice([None, None, 0, 1, 500])
        cases.append(Case(seed, index, steps, method, read_limit))
    return cases


def _mutate(data: bytes, how: tuple[typing.Any, ...]) -> bytes:
    _, kind, where = how
    data = bytes(data)
    if not data:
        return data
    position = int(where * len(data))
    if kind == 0:  # flip a bit
        index = min(position, len(data) - 1)
        return data[:index] + bytes([data[index] ^ 0x10]) + data[index + 1 :]
    if kind == 1:  # cut
        return data[:position]
    if kind == 2:  # doubled
        return data + data
    return data[:position] + b"\x00\x00\x00" + data[position:]  # bytes inserted


def _raw_frame(stream_id: int, step: Step) -> bytes:
    _, frame_type, flags, which, payload, honest = step[:6]
    # "idle": a stream the client has not opened, far enough ahead that it will not open
    # it in this run (a frame for the very next one would fail the good request after).
    targets = {"0": 0, "s": stream_id, "idle": stream_id + 2_000_002, "1": 1, "2": 2, "max": 2**31 - 1}
    length = len(payload) if honest else len(payload) + 7
    head = length.to_bytes(3, "big") + bytes([frame_type, flags]) + targets[which].to_bytes(4, "big")
    return bytes(head + payload)


class H2Peer(Peer):
    """An in-memory HTTP/2 server (prior knowledge) answering good and fuzz requests."""

    def __init__(self, cases: list[Case]) -> None:
        super().__init__()
        self.cases = cases
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        self.paths: dict[int, bytes] = {}
        self._flush()

    def _flush(self, mutate: tuple[typing.Any, ...] | None = None) -> None:
        data = self.h2.data_to_send()
        if mutate is not None:
            data = _mutate(data, mutate)
        if data:
            self.outgoing.append(data)

    def received(self, data: bytes) -> None:
        if STALL in self.outgoing:  # the client speaks again: whatever stalled is over
            self.outgoing = collections.deque(item for item in self.outgoing if item is not STALL)
        try:
            events = self.h2.receive_data(data)
        except (h2.exceptions.ProtocolError, ValueError, KeyError, IndexError):
            self.ended = True  # what the client sends makes no sense to us any more
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.paths[event.stream_id] = dict(event.headers or []).get(b":path", b"")
            elif isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                try:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                except h2.exceptions.ProtocolError:
                    pass
            if isinstance(event, h2.events.StreamEnded) and event.stream_id in self.paths:
                self.answer(event.stream_id, self.paths.pop(event.stream_id))
        self._flush()

    def answer(self, stream_id: int, path: bytes) -> None:
        if self.ended or self.dead:
            return
        if path.startswith(b"/good/"):
            try:
                self.h2.send_headers(stream_id, [(b":status", b"200")])
                self.h2.send_data(stream_id, b"good:" + path[6:], end_stream=True)
            except h2.exceptions.ProtocolError:  # a fuzz case left us unable to: hang up
                self.h2.clear_outbound_data_buffer()
                self.ended = True
            return
        for step in self.cases[int(path.rsplit(b"/", 1)[1])].steps:
            self.perform(stream_id, step)
            if self.ended or self.dead:
                return

    def perform(self, stream_id: int, step: Step) -> None:
        mutate = step[-1] if step and isinstance(step[-1], tuple) else None
        kind = step[0]
        h = self.h2
        if kind == "eof":
            self.ended = True
            return
        if kind in ("tcp-reset", "stall"):
            self.outgoing.append(RESET if kind == "tcp-reset" else STALL)
            return
        if kind == "raw":
            data = _raw_frame(stream_id, step)
            self.outgoing.append(_mutate(data, mutate) if mutate else data)
            return
        try:
            if kind == "head":
                h.send_headers(stream_id, [(b":status", step[1]), *step[2]], end_stream=step[3])
            elif kind == "info":
                h.send_headers(stream_id, [(b":status", b"103"), (b"link", b"</a>")])
            elif kind == "data":
                size = min(step[1], h.local_flow_control_window(stream_id), h.max_outbound_frame_size)
                h.send_data(stream_id, b"d" * size, end_stream=step[2])
            elif kind == "trailers":
                h.send_headers(stream_id, [(b"x-trailer", b"1")], end_stream=True)
            elif kind == "reset":
                h.reset_stream(stream_id, step[1])
            elif kind == "goaway":
                h.close_connection(error_code=step[2], last_stream_id=max(0, stream_id + step[1]))
            elif kind == "settings":
                h.update_settings({step[1]: step[2]})
            elif kind == "ping":
                h.ping(b"fuzzping")
            elif kind == "window":
                h.increment_flow_control_window(step[2], stream_id=stream_id if step[1] else None)
        except (h2.exceptions.ProtocolError, ValueError, KeyError):
            h.clear_outbound_data_buffer()  # not something h2 will send: skip the step
            return
        self._flush(mutate)
