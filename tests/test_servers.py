"""Self-tests of the test servers and fixtures, using only the stdlib (and h2).

Theory of operation: each fixture is exercised with the simplest possible
client (``http.client``, bare sockets, ``ssl``, the sans-I/O ``h2`` state
machine) so that a failure here points at the test infrastructure, not at
httpcore.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import pytest

from tests.servers import (
    HypercornServer,
    RawConnection,
    RawServerFactory,
    UvicornServer,
    chunked,
    keep_alive,
    ok,
    pattern,
    per_connection,
    response,
    scripted,
)


def _connect(
    url: str, context: ssl.SSLContext | None = None, timeout: float = 5.0
) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def _raw_socket(url: str, timeout: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


# -- helpers ----------------------------------------------------------------


def test_pattern_is_consistent() -> None:
    whole = bytes(i % 251 for i in range(2000))
    assert pattern(2000) == whole
    assert pattern(700) + pattern(1300, 700) == whole
    assert pattern(0) == b""


def test_response_builders() -> None:
    assert ok(b"hi", [(b"X-A", b"1")]) == b"HTTP/1.1 200 OK\r\nX-A: 1\r\ncontent-length: 2\r\n\r\nhi"
    assert response(599).startswith(b"HTTP/1.1 599 Unknown\r\n")
    assert chunked(b"abc", b"", b"de") == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"


# -- uvicorn -------------------------------------------------------------------


def test_uvicorn_root(server: UvicornServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    conn = _connect(server.url)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("content-type") == "text/plain"
        assert resp.read() == b"Hello, world!"
    finally:
        conn.close()


def test_uvicorn_stream_and_fixed(server: UvicornServer) -> None:
    conn = _connect(server.url)
    try:
        conn.request("GET", "/stream?size=300000&chunk=7000")
        resp = conn.getresponse()
        assert resp.getheader("transfer-encoding") == "chunked"
        assert resp.getheader("content-length") is None
        assert resp.read() == pattern(300000)

        conn.request("GET", "/fixed?size=1000")
        resp = conn.getresponse()
        assert resp.getheader("content-length") == "1000"
        assert resp.read() == pattern(1000)
    finally:
        conn.close()


def test_uvicorn_upload_and_echo(server: UvicornServer) -> None:
    data = pattern(200_000)

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), 50_000):
            yield data[start : start + 50_000]

    conn = _connect(server.url)
    try:
        conn.request("POST", "/upload", body=body(), encode_chunked=True)
        result = json.loads(conn.getresponse().read())
        assert result["length"] == len(data)
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert result["chunks"] >= 1

        conn.request("PUT", "/echo_body", body=b"echo me")
        assert conn.getresponse().read() == b"echo me"

        conn.request("GET", "/echo_headers", headers={"X-Test": "v"})
        info = json.loads(conn.getresponse().read())
        assert info["method"] == "GET" and info["http_version"] == "1.1"
        assert ["x-test", "v"] in info["headers"]

        conn.request("GET", "/headers_out?X-Case=1&x-case=2")
        resp = conn.getresponse()
        resp.read()
        assert [(k, v) for k, v in resp.getheaders() if k.lower() == "x-case"] == [
            ("X-Case", "1"),
            ("x-case", "2"),
        ]

        conn.request("GET", "/status/204")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (204, b"")
    finally:
        conn.close()


def test_uvicorn_ipv6(server_ipv6: UvicornServer) -> None:
    assert server_ipv6.url == f"http://[::1]:{server_ipv6.port}"
    conn = _connect(server_ipv6.url)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"Hello, world!"
    finally:
        conn.close()


def test_uvicorn_tls(tls_server: UvicornServer, client_ssl_context: ssl.SSLContext) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    conn = http.client.HTTPSConnection("localhost", tls_server.port, timeout=5, context=client_ssl_context)
    try:
        conn.request("GET", "/echo_headers")
        assert json.loads(conn.getresponse().read())["scheme"] == "https"
    finally:
        conn.close()
    untrusting = ssl.create_default_context()
    with (
        _raw_socket(tls_server.url) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(sock, server_hostname="localhost")


# -- raw server ----------------------------------------------------------------


def test_raw_scripted_and_recording(raw_server: RawServerFactory) -> None:
    srv = raw_server(scripted(ok(b"one"), ok(b"two")))
    conn = _connect(srv.url)
    try:
        conn.request("GET", "/a")
        assert conn.getresponse().read() == b"one"
        conn.request("POST", "/b", body=iter([b"xy", b"z"]), encode_chunked=True)
        assert conn.getresponse().read() == b"two"
        conn.request("GET", "/c")  # script exhausted: the server closed
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
    finally:
        conn.close()
    assert srv.connections_accepted == 1
    assert srv.requests[0].startswith(b"GET /a HTTP/1.1\r\n")
    assert srv.requests[1].startswith(b"POST /b HTTP/1.1\r\n")
    assert srv.requests[1].endswith(b"\r\n\r\n2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n")
    assert srv.errors == []


def test_raw_reset_and_per_connection(raw_server: RawServerFactory) -> None:
    def reset(conn: RawConnection) -> None:
        conn.read_request()
        conn.reset()

    srv = raw_server(per_connection(reset, keep_alive(ok(b"fine"))))
    with _raw_socket(srv.url) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    for _ in range(2):  # connections 1 and 2 both get the last handler
        conn = _connect(srv.url)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"fine"
        finally:
            conn.close()
    assert srv.connections_accepted == 3


def test_raw_slow_send(raw_server: RawServerFactory) -> None:
    payload = ok(b"slowly")

    def slow(conn: RawConnection) -> None:
        conn.read_request()
        conn.send_slowly(payload, chunk=8, delay=0.01)

    srv = raw_server(slow)
    start = time.monotonic()
    conn = _connect(srv.url)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"slowly"
    finally:
        conn.close()
    assert time.monotonic() - start >= 0.01 * (len(payload) // 8 - 1)


def test_raw_tls(
    raw_server: RawServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    srv = raw_server(keep_alive(ok()), ssl_context=server_ssl_context)
    assert srv.url.startswith("https://127.0.0.1:")
    conn = _connect(srv.url, client_ssl_context)
    try:
        for _ in range(2):
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"ok"
    finally:
        conn.close()
    assert srv.connections_accepted == 1 and len(srv.requests) == 2


def test_raw_stop_never_hangs(raw_server: RawServerFactory) -> None:
    def stuck(conn: RawConnection) -> None:
        conn.sleep(60)

    srv = raw_server(stuck)
    with _raw_socket(srv.url) as a, _raw_socket(srv.url) as b:
        a.sendall(b"GET / HTTP/1.1\r\n")  # an incomplete request
        b.settimeout(5)
        assert srv.wait_for_connections(2)  # unaccepted ones would be reset
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 2
        assert b.recv(10) == b""  # closed by stop()


# -- hypercorn (HTTP/2) ----------------------------------------------------------


def _h2_get(sock: socket.socket, authority: str, path: str = "/") -> tuple[int, bytes]:
    """One HTTP/2 GET over an already connected socket; returns (status, body)."""
    h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    h2conn.initiate_connection()
    stream_id = h2conn.get_next_available_stream_id()
    headers = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
    ]
    h2conn.send_headers(stream_id, headers, end_stream=True)
    sock.sendall(h2conn.data_to_send())
    status, body, saw_settings = 0, b"", False
    while True:
        data = sock.recv(65536)
        assert data, "server closed the connection"
        for event in h2conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                saw_settings = True
            elif isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                h2conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                assert saw_settings
                return status, body
        sock.sendall(h2conn.data_to_send())


def test_hypercorn_h2c_prior_knowledge(h2c_server: HypercornServer) -> None:
    assert h2c_server.url.startswith("http://127.0.0.1:")
    with _raw_socket(h2c_server.url) as sock:
        assert _h2_get(sock, f"127.0.0.1:{h2c_server.port}") == (200, b"Hello, world!")


def test_hypercorn_tls_alpn_h2(h2_server: HypercornServer, client_ssl_context: ssl.SSLContext) -> None:
    client_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        _raw_socket(h2_server.url) as raw,
        client_ssl_context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        assert sock.selected_alpn_protocol() == "h2"
        status, body = _h2_get(sock, f"localhost:{h2_server.port}", "/fixed?size=100000")
        assert (status, body) == (200, pattern(100000))
