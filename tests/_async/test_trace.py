"""The "trace" extension: httpcore 1.x's event names, order and payloads, exactly.

httpx's command line unpacks these payloads (``http_version, status, reason, headers =
info["return_value"]``), so their shapes are asserted, not just the names. Also the
protocol switch (101, CONNECT 2xx): the network stream handed over with the bytes that
came after the head.
"""

from __future__ import annotations

import ssl
import typing

import pytest

import httpcore
from httpcore import _trace
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory

Events = list[tuple[str, dict[str, typing.Any]]]


def recorder() -> tuple[Events, typing.Any]:
    events: Events = []

    async def trace(name: str, info: dict[str, typing.Any]) -> None:
        events.append((name, info))

    return events, trace


def names(events: Events) -> list[str]:
    return [name for name, _ in events]


def steps(*step_names: str) -> list[str]:
    return [name + suffix for name in step_names for suffix in (".started", ".complete")]


async def test_http11_events_and_payloads(server: UvicornServer) -> None:
    events, trace = recorder()
    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("GET", server.url + "/", extensions={"trace": trace})
    assert r.body == b"Hello, world!"
    assert names(events) == steps(
        _trace.CONNECT_TCP,
        _trace.HTTP11_SEND_REQUEST_HEADERS,
        _trace.HTTP11_SEND_REQUEST_BODY,
        _trace.HTTP11_RECEIVE_RESPONSE_HEADERS,
        _trace.HTTP11_RECEIVE_RESPONSE_BODY,
        _trace.HTTP11_RESPONSE_CLOSED,
    )
    info = dict(events)
    port = httpcore.URL(server.url).port
    assert info["connection.connect_tcp.started"] == {
        "host": "127.0.0.1",
        "port": port,
        "local_address": None,
        "timeout": 5.0,
        "socket_options": None,
    }
    assert info["connection.connect_tcp.complete"]["return_value"] is r.extensions["network_stream"]
    request = info["http11.send_request_headers.started"]["request"]
    assert isinstance(request, httpcore.Request) and request.url.target == b"/"
    for step in (
        "send_request_headers",
        "send_request_body",
        "receive_response_headers",
        "receive_response_body",
    ):
        assert info[f"http11.{step}.started"] == {"request": request}
    http_version, status, reason_phrase, headers = info["http11.receive_response_headers.complete"][
        "return_value"
    ]
    assert (http_version, status, reason_phrase) == (b"HTTP/1.1", 200, b"OK")
    assert headers == r.headers
    assert info["http11.send_request_headers.complete"] == {"return_value": None}
    assert info["http11.response_closed.started"] == {}
    assert info["http11.response_closed.complete"] == {"return_value": None}


async def test_http11_upload_is_traced_head_then_body(server: UvicornServer) -> None:
    events, trace = recorder()

    async def body() -> typing.AsyncIterator[bytes]:
        events.append(("body chunk sent", {}))
        yield b"x" * 1000

    async with httpcore.AsyncConnectionPool() as http:
        r = await http.request("POST", server.url + "/echo_body", body=body(), extensions={"trace": trace})
    assert r.body == b"x" * 1000
    sequence = names(events)
    start = sequence.index("body chunk sent")  # the first chunk is taken to frame the head
    assert sequence[start : start + 5] == [
        "body chunk sent",
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.send_request_body.started",
        "http11.send_request_body.complete",
    ]


async def test_tls_events(tls_server: UvicornServer, client_ssl_context: ssl.SSLContext) -> None:
    events, trace = recorder()
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context) as http:
        r = await http.request(
            "GET", tls_server.url + "/", extensions={"trace": trace, "timeout": {"connect": 3.0}}
        )
    assert names(events)[:4] == steps(_trace.CONNECT_TCP, _trace.START_TLS)
    started = dict(events)["connection.start_tls.started"]
    timeout = started.pop("timeout")
    assert 0 < timeout <= 3.0  # what is left of the connect deadline
    assert started == {"ssl_context": client_ssl_context, "server_hostname": "127.0.0.1"}
    assert dict(events)["connection.start_tls.complete"]["return_value"] is r.extensions["network_stream"]


async def test_http2_events_and_payloads(h2c_server: HypercornServer) -> None:
    events, trace = recorder()
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        r = await pool.request("GET", h2c_server.url + "/", extensions={"trace": trace})
        first = names(events)
        events.clear()
        await pool.request("GET", h2c_server.url + "/", extensions={"trace": trace})
    per_request = [
        _trace.HTTP2_SEND_REQUEST_HEADERS,
        _trace.HTTP2_SEND_REQUEST_BODY,
        _trace.HTTP2_RECEIVE_RESPONSE_HEADERS,
        _trace.HTTP2_RECEIVE_RESPONSE_BODY,
        _trace.HTTP2_RESPONSE_CLOSED,
    ]
    assert first == steps(_trace.CONNECT_TCP, _trace.HTTP2_SEND_CONNECTION_INIT, *per_request)
    assert names(events) == steps(*per_request)  # the connection was set up already
    info = dict(events)
    request = info["http2.send_request_headers.started"]["request"]
    assert info["http2.send_request_headers.started"] == {"request": request, "stream_id": 3}
    assert info["http2.receive_response_body.started"] == {"request": request, "stream_id": 3}
    status, headers = info["http2.receive_response_headers.complete"]["return_value"]
    assert status == 200 and (b"content-type", b"text/plain") in headers
    assert info["http2.response_closed.started"] == {"stream_id": 3}
    assert r.extensions["stream_id"] == 1


async def test_failed_connect_and_retry(raw_server: RawServerFactory) -> None:
    srv = raw_server(lambda conn: None)
    port = httpcore.URL(srv.url).port
    srv.stop()  # nothing listens there now: connections are refused
    events, trace = recorder()
    async with httpcore.AsyncConnectionPool(retries=1) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", f"http://127.0.0.1:{port}/", extensions={"trace": trace})
    assert names(events) == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.failed",
        "connection.retry.started",
        "connection.retry.complete",
        "connection.connect_tcp.started",
        "connection.connect_tcp.failed",
    ]
    assert isinstance(events[1][1]["exception"], httpcore.ConnectError)
    assert events[2][1] == {"delay": 0.0}


async def test_failed_response_head_then_closed(raw_server: RawServerFactory) -> None:
    def hang_up(conn: RawConnection) -> None:
        conn.read_request()

    srv = raw_server(hang_up)
    events, trace = recorder()
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.RemoteProtocolError):
            await http.request("GET", srv.url + "/", extensions={"trace": trace})
    assert names(events)[-5:] == [
        "http11.send_request_body.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.failed",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    ]
    assert isinstance(events[-3][1]["exception"], httpcore.RemoteProtocolError)


async def test_failed_body_is_traced(raw_server: RawServerFactory) -> None:
    def cut_short(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")

    srv = raw_server(cut_short)
    events, trace = recorder()
    async with httpcore.AsyncConnectionPool() as http:
        with pytest.raises(httpcore.RemoteProtocolError):
            await http.request("GET", srv.url + "/", extensions={"trace": trace})
        assert http.connections == []
    assert names(events)[-2:] == [
        "http11.receive_response_body.started",
        "http11.receive_response_body.failed",
    ]


async def test_unix_socket_events(tmp_path: typing.Any) -> None:
    import socket
    import threading

    path = str(tmp_path / "trace.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    events, trace = recorder()
    try:
        async with httpcore.AsyncConnectionPool(uds=path) as http:
            r = await http.request("GET", "http://localhost/", extensions={"trace": trace})
    finally:
        thread.join(5)
        listener.close()
    assert r.status_code == 204
    assert names(events)[:2] == steps(_trace.CONNECT_UNIX_SOCKET)
    assert events[0][1] == {"path": path, "timeout": 5.0, "socket_options": None}


def test_the_table_is_1x_vocabulary() -> None:
    assert len(set(_trace.STEPS)) == len(_trace.STEPS) == 16
    for step in _trace.STEPS:
        layer, _, name = step.partition(".")
        assert layer in ("connection", "http11", "http2") and name.isidentifier()


@pytest.mark.parametrize(
    "status_line", [b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 200 Connection established"]
)
async def test_switched_protocol_hands_over_the_stream(
    raw_server: RawServerFactory, status_line: bytes
) -> None:
    def switch(conn: RawConnection) -> None:
        conn.read_head()
        conn.send(status_line + b"\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello")
        data = conn.recv(5)
        conn.send(b"echo:" + data)

    srv = raw_server(switch)
    connect = status_line.startswith(b"HTTP/1.1 200")
    method = "CONNECT" if connect else "GET"
    headers = [] if connect else [(b"Upgrade", b"echo"), (b"Connection", b"Upgrade")]
    url = httpcore.URL(srv.url)
    async with httpcore.AsyncConnectionPool() as http:
        async with http.stream(method, url, headers=headers) as r:
            assert r.status_code == (200 if connect else 101)
            network = r.extensions["network_stream"]
            assert await network.read(3) == b"hel"  # read past the head with it
            assert network.is_readable()
            assert await network.read(100) == b"lo"
            await network.write(b"ping!")
            assert await network.read(100, timeout=5.0) == b"echo:ping!"
            assert network.get_extra_info("server_addr")[1] == url.port
            assert await r.aread() == b""  # a switched response has no body
        assert http.connections == []  # the connection went with the stream: never reused
