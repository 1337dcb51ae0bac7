"""The leak check itself: it must see what a test leaves behind, and only that."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from tests import leaks
from tests.servers.asgi_server import UvicornServer

pytestmark = pytest.mark.skipif(not leaks.available(), reason="no /proc/self/fd")


def test_an_open_socket_is_reported_until_closed(server: UvicornServer) -> None:
    check = leaks.LeakCheck(settle=0.1)
    check.start()
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        [problem] = check.finish()
        assert problem.startswith("socket left open: fd ")
        assert f"-> 127.0.0.1:{server.port} (ESTABLISHED)" in problem
    finally:
        sock.close()
    assert check.finish() == []


def test_a_socket_pair_is_reported() -> None:
    check = leaks.LeakCheck(settle=0.1)
    check.start()
    a, b = socket.socketpair()
    try:
        problems = check.finish()
        assert len(problems) == 2
        assert all("not TCP" in problem for problem in problems)
    finally:
        a.close()
        b.close()
    assert check.finish() == []


def test_sockets_of_running_server_threads_are_not_leaks(server: UvicornServer) -> None:
    # Accepted connections are the server's: they close on its schedule, not the test's.
    check = leaks.LeakCheck(settle=0.1)
    check.start()
    ready = threading.Event()
    done = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        held.append(socket.create_connection(("127.0.0.1", server.port)))
        ready.set()
        done.wait(5)
        held[0].close()

    thread = threading.Thread(target=serve, name=f"UvicornServer-test-{server.port}")
    thread.start()
    try:
        assert ready.wait(5)
        assert check.finish() == []
    finally:
        done.set()
        thread.join(5)


def test_a_long_lived_listener_is_not_a_leak() -> None:
    check = leaks.LeakCheck(settle=0.1)
    check.start()
    with UvicornServer() as srv:
        assert srv.port
        assert check.finish() == []
    assert check.finish() == []


def test_loop_errors_are_reported() -> None:
    async def fail() -> None:
        raise ValueError("nobody looked")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(fail())
        await asyncio.sleep(0)
        assert task.done()

    check = leaks.LeakCheck(settle=0.1)
    check.start()
    asyncio.run(main())
    [problem] = check.finish()
    assert problem.startswith("event loop error: [MainThread] Task exception was never retrieved")
    assert "nobody looked" in problem
    assert check.finish() == []
