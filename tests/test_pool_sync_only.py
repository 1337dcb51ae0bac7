"""Pool behaviour that needs threads: one ConnectionPool shared safely by many threads."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor

import httpcore
from tests.servers.asgi_server import UvicornServer


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
