"""Pool behaviour that needs threads: one ConnectionPool shared safely by many threads."""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpcore
from tests.servers.asgi_server import UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory


def test_threads_share_one_pool(server: UvicornServer) -> None:
    with httpcore.ConnectionPool(max_connections=4) as http:

        def work(_: int) -> int:
            return sum(http.request("GET", server.url + "/").status_code == 200 for _ in range(25))

        with ThreadPoolExecutor(8) as executor:
            assert sum(executor.map(work, range(8))) == 200
        assert len(http.connections) <= 4
        assert all(count == 0 for count in http._load.values())


def test_threads_waiting_for_one_connection(server: UvicornServer) -> None:
    with httpcore.ConnectionPool(max_connections=1) as http:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(10):
                    with http.stream("GET", server.url + "/fixed?size=10000") as r:
                        assert len(r.read()) == 10000
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert errors == []
        assert len(http.connections) == 1


def test_gc_finalised_response_cannot_deadlock(server: UvicornServer) -> None:
    with httpcore.ConnectionPool(max_connections=1) as http:
        for _ in range(20):
            response = http.request("GET", server.url + "/stream?size=100000", stream=True)
            del response
            gc.collect()
        r = http.request("GET", server.url + "/", timeout=2.0)
        assert r.status_code == 200
        assert len(http.connections) == 1


def test_finaliser_under_held_lock(server: UvicornServer) -> None:
    with httpcore.ConnectionPool(max_connections=1) as http:
        response = http.request("GET", server.url + "/stream?size=100000", stream=True)
        stream = response.stream
        del response
        with http._lock:
            stream.__del__()  # what the collector would do while this thread holds the lock
        del stream
        assert http.request("GET", server.url + "/", timeout=2.0).status_code == 200


def test_one_shot_request(server: UvicornServer) -> None:
    r = httpcore.request("GET", server.url + "/")
    assert r.status_code == 200
    assert r.body == b"Hello, world!"


def test_close_ends_requests_in_flight_in_other_threads(raw_server: RawServerFactory) -> None:
    """close() while another thread waits for a response on a kept-alive connection: that
    request ends at once with PoolClosed, and no connection opens in the closed pool."""

    def first_only(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.read_request()
        conn.sleep(10)  # never answers the second

    srv = raw_server(first_only)
    pool = httpcore.ConnectionPool(timeout=5.0)
    assert pool.request("GET", srv.url + "/").body == b"ok"
    outcome: list[BaseException | int] = []

    def in_flight() -> None:
        try:
            outcome.append(pool.request("GET", srv.url + "/").status_code)
        except httpcore.HTTPCoreError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=in_flight)
    thread.start()
    deadline = time.monotonic() + 5
    while len(srv.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    pool.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0
    [error] = outcome
    assert isinstance(error, httpcore.PoolClosed)
    assert pool.connections == []
    assert srv.connections_accepted == 1
