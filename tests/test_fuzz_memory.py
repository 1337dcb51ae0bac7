"""The seeded fuzz in volume: adversarial responses through the protocol code in memory.

(And 100 of the HTTP/2 cases each way over real sockets, served by the same peers.)

5,000 HTTP/1.1 responses and 1,000 HTTP/2 frame sequences per run, each through one
shared pool, sync and async (tests/fuzzing/run.py says what is checked after every
case). The network is taken out (tests/fuzzing/memory.py), so a case costs
milliseconds; tests/test_fuzz_http11.py drives the same HTTP/1.1 cases over real
sockets. ``HTTPCORE_FUZZ_SEED`` picks another seed; ``make fuzz SEED=... CASES=...``
runs a longer one.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.fuzzing import h2, run
from tests.servers.raw import RawServerFactory

SEED = int(os.environ.get("HTTPCORE_FUZZ_SEED", "1105"))
HTTP11_CASES = 5_000
HTTP2_CASES = 1_000
BOUND = 20.0  # seconds for one run: a few on this machine, with room for a busy one


@pytest.mark.parametrize(
    ("runner", "count"),
    [
        (run.run_h1, HTTP11_CASES),
        (run.run_h1_async, HTTP11_CASES),
        (run.run_h2, HTTP2_CASES),
        (run.run_h2_async, HTTP2_CASES),
    ],
    ids=["http11-sync", "http11-async", "http2-sync", "http2-async"],
)
def test_fuzz_in_memory(runner: run.Runner, count: int) -> None:
    started = time.monotonic()
    connections = runner(SEED, count)
    assert connections > 1  # the cases broke connections, and the pool made new ones
    assert time.monotonic() - started < BOUND


HTTP2_SOCKET_CASES = 100


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fuzz_http2_over_sockets(raw_server: RawServerFactory, mode: str) -> None:
    cases = h2.make_cases(SEED + 1, HTTP2_SOCKET_CASES)
    srv = raw_server(run.serve_peers(lambda: h2.H2Peer(cases), stall=0.2))
    started = time.monotonic()
    (run.run_h2_over if mode == "sync" else run.run_h2_over_async)(srv.url, cases)
    assert srv.connections_accepted > 1
    assert time.monotonic() - started < BOUND
    assert srv.errors == []
