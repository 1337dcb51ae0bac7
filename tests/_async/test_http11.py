"""HTTP/1.1 through the pool against uvicorn and the raw server: the happy paths."""

from __future__ import annotations

import hashlib
import json
import typing

import pytest

import httpcore
from tests.servers.app import pattern
from tests.servers.asgi_server import UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory, keep_alive, ok, response, scripted


async def test_get(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        assert r.body == b"Hello, world!"
        assert r.http_version == b"HTTP/1.1"
        assert r.reason_phrase == b"OK"
        assert (b"content-type", b"text/plain") in r.headers
        assert r.extensions["network_stream"] is not None


async def test_get_ipv6(server_ipv6: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server_ipv6.url + "/")
        assert r.body == b"Hello, world!"


async def test_post_bytes_with_str_and_bytes_headers(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request(
            b"POST",
            server.url + "/echo_headers",
            headers=[("X-Str", "one"), (b"X-Bytes", b"two")],
            body=b"{}",
        )
        seen = json.loads(r.body)
        headers = dict((k.lower(), v) for k, v in seen["headers"])
        assert seen["method"] == "POST"
        assert headers["x-str"] == "one"
        assert headers["x-bytes"] == "two"
        assert headers["content-length"] == "2"
        assert headers["host"] == f"127.0.0.1:{server.port}"


async def test_host_header_kept_when_given(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + "/echo_headers", headers=[("Host", "example.org")])
        headers = dict(json.loads(r.body)["headers"])
        assert headers["host"] == "example.org"


async def test_host_header_default_port_omitted(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok()))
    async with httpcore.AsyncConnectionPool() as http:
        url = httpcore.URL(scheme="http", host="127.0.0.1", port=srv.port, target="/")
        await http.request("GET", url)
        conn = typing.cast(typing.Any, http.connections[0])._connection
        conn._host_header = b"127.0.0.1"  # what an origin on port 80 sends
        await http.request("GET", url)
    assert b"\r\nHost: 127.0.0.1:" in srv.requests[0]
    assert b"\r\nHost: 127.0.0.1\r\n" in srv.requests[1]


async def test_empty_post_sends_content_length_zero(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok()))
    async with httpcore.AsyncConnectionPool() as http:
        await http.request("POST", srv.url + "/", body=b"")
        await http.request("GET", srv.url + "/")
    assert b"Content-Length: 0" in srv.requests[0]
    assert b"Content-Length" not in srv.requests[1]
    assert b"Transfer-Encoding" not in srv.requests[1]


async def test_streaming_upload_from_generator(server: UvicornServer) -> None:
    async def body() -> typing.AsyncIterator[bytes]:
        for i in range(64):
            yield pattern(16384, i * 16384)

    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("POST", server.url + "/upload", body=body())
        result = json.loads(r.body)
        assert result["length"] == 64 * 16384
        assert result["sha256"] == hashlib.sha256(pattern(64 * 16384)).hexdigest()


async def test_streaming_upload_is_chunked(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(ok()))

    async def body() -> typing.AsyncIterator[bytes]:
        yield b"hello"
        yield b""
        yield b"world"

    async with httpcore.AsyncConnectionPool() as http:
        await http.request("PUT", srv.url + "/", body=body())
        await http.request("PUT", srv.url + "/", body=[b"sync", b"list"])
    assert b"Transfer-Encoding: chunked" in srv.requests[0]
    assert srv.requests[0].endswith(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
    assert srv.requests[1].endswith(b"4\r\nsync\r\n4\r\nlist\r\n0\r\n\r\n")


async def test_upload_with_explicit_content_length(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request(
            "POST", server.url + "/echo_body", headers=[("Content-Length", "6")], body=[b"abc", b"def"]
        )
        assert r.body == b"abcdef"


async def test_upload_chunk_type_checked(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(TypeError):
            await http.request("POST", server.url + "/echo_body", body=["text"])  # type: ignore[list-item]
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200


async def test_large_bytes_upload(server: UvicornServer) -> None:
    data = pattern(3 * 1024 * 1024)
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("POST", server.url + "/upload", body=data)
        assert json.loads(r.body)["sha256"] == hashlib.sha256(data).hexdigest()


async def test_streaming_download_and_reuse(server: UvicornServer) -> None:
    size = 8 * 1024 * 1024
    async with httpcore.AsyncConnectionPool() as http:
        for _ in range(2):
            digest = hashlib.sha256()
            total = 0
            async with http.stream("GET", server.url + f"/stream?size={size}") as r:
                assert r.status_code == 200
                async for chunk in r.stream():
                    digest.update(chunk)
                    total += len(chunk)
            assert total == size
            assert digest.hexdigest() == hashlib.sha256(pattern(size)).hexdigest()
        assert len(http.connections) == 1


async def test_stream_true_then_read(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + "/fixed?size=100000", stream=True)
        with pytest.raises(RuntimeError):
            r.body
        assert await r.aread() == pattern(100000)
        assert r.body == pattern(100000)
        assert await r.aread() == pattern(100000)
        r = await http.request("GET", server.url + "/", stream=True)
        await r.aclose()
        await r.aclose()
        r = await http.request("GET", server.url + "/", stream=True)
        assert [chunk async for chunk in r.stream()] == [b"Hello, world!"]
        assert len(http.connections) == 1


async def test_abandoned_stream_closes_connection(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        async with http.stream("GET", server.url + "/stream?size=1000000") as r:
            async for _ in r.stream():
                break
        assert http.connections == []
        r2 = await http.request("GET", server.url + "/")
        assert r2.body == b"Hello, world!"


async def test_chunked_and_close_delimited_bodies(raw_server: RawServerFactory) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    close_delimited = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    srv = raw_server(scripted(chunked, close_delimited))
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", srv.url + "/")
        assert r.body == b"abcde"
        r = await http.request("GET", srv.url + "/")
        assert r.body == b"until the end"
        assert http.connections == []


async def test_http10_response(raw_server: RawServerFactory) -> None:
    srv = raw_server(scripted(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", srv.url + "/")
        assert r.http_version == b"HTTP/1.0"
        assert r.body == b"hi"
        assert http.connections == []


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(server: UvicornServer, status: int) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + f"/status/{status}")
        assert r.status_code == status
        assert r.body == b""
        r = await http.request("GET", server.url + "/")
        assert r.body == b"Hello, world!"
        assert len(http.connections) == 1


async def test_head(raw_server: RawServerFactory) -> None:
    srv = raw_server(keep_alive(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
    async with httpcore.AsyncConnectionPool() as http:
        for _ in range(3):
            r = await http.request("HEAD", srv.url + "/")
            assert r.status_code == 200
            assert (b"Content-Length", b"1000") in r.headers
            assert r.body == b""
    assert srv.connections_accepted == 1


async def test_informational_responses_are_skipped(raw_server: RawServerFactory) -> None:
    srv = raw_server(
        scripted(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(b"done"))
    )
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", srv.url + "/")
        assert r.status_code == 200
        assert r.body == b"done"


async def test_headers_keep_case_and_order(raw_server: RawServerFactory) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-B: 1\r\nx-a: 2\r\nX-B: 3\r\nContent-Length: 0\r\n\r\n"
    srv = raw_server(scripted(head))
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", srv.url + "/")
        assert r.headers == [(b"X-B", b"1"), (b"x-a", b"2"), (b"X-B", b"3"), (b"Content-Length", b"0")]


async def test_200_sequential_requests_on_one_connection(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        for _ in range(200):
            r = await http.request("GET", server.url + "/")
            assert r.status_code == 200
        assert len(http.connections) == 1


async def test_server_closing_after_response(server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + "/close")
        assert r.body == b"closing"
        assert http.connections == []
        r = await http.request("GET", server.url + "/")
        assert r.body == b"Hello, world!"


async def test_response_before_upload_finished(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_head()
        conn.send(response(413, b"too big", headers=[(b"Connection", b"close")]))
        conn.close()

    srv = raw_server(handler)

    async def body() -> typing.AsyncIterator[bytes]:
        for _ in range(400):
            yield b"x" * 65536

    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("POST", srv.url + "/", body=body())
        assert r.status_code == 413
        assert r.body == b"too big"


async def test_unix_domain_socket(tmp_path: typing.Any) -> None:
    import os
    import socket
    import threading

    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(ok(b"via uds"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        async with httpcore.AsyncConnectionPool(uds=path) as http:
            r = await http.request("GET", "http://localhost/")
            assert r.body == b"via uds"
    finally:
        thread.join(5)
        listener.close()
        os.unlink(path)


async def test_local_address_and_socket_options(server: UvicornServer) -> None:
    import socket

    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    async with httpcore.AsyncConnectionPool(local_address="127.0.0.1", socket_options=options) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert r.extensions["network_stream"].get_extra_info("client_addr")[0] == "127.0.0.1"


async def test_trace_extension(server: UvicornServer) -> None:
    events: list[str] = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        events.append(name)

    async with httpcore.AsyncConnectionPool() as http:
        await http.request("GET", server.url + "/", extensions={"trace": trace})
    assert events[:2] == ["connection.connect_tcp.started", "connection.connect_tcp.complete"]
    assert "http11.send_request_headers.started" in events
    assert "http11.receive_response_headers.complete" in events
    assert events[-1] == "http11.response_closed.complete"


async def test_one_shot_connection_directly(server: UvicornServer) -> None:
    origin = httpcore.URL(server.url).origin
    connection = httpcore.AsyncHTTPConnection(origin)
    request = httpcore.Request("GET", server.url + "/", extensions={"timeout": {"read": 5.0}})
    response = await connection.handle_async_request(request)
    assert await response.aread() == b"Hello, world!"
    assert not connection.is_closed()
    assert not connection.has_expired()
    assert "HTTP11Connection" in repr(connection)
    await connection.aclose()
    assert connection.is_closed()
