"""SOCKS5 and SOCKS5h proxies for real: microsocks with and without auth, and a scripted
SOCKS5 server of our own for what the proxy is sent, refusals, garbage and stalls at
every step; plain, TLS and HTTP/2 origins."""

from __future__ import annotations

import json
import pathlib
import socket
import ssl
import time
import typing

import pytest

import httpcore
from httpcore._socks import REPLY_MESSAGES
from tests.concurrency import AsyncRunningBackend
from tests.conftest import SOCKS_AUTH
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.netutil import bind_listener
from tests.servers.raw import RawConnection, RawServerFactory
from tests.servers.socks import (
    STALL_STEPS,
    MicrosocksServer,
    PproxyServer,
    SOCKSRequest,
    SOCKSScript,
    UnixForwarder,
)

CONNECT_TIMEOUT = 0.5
# Reads may wait long: only the connect deadline may end a stalled handshake.
STALL_TIMEOUT = httpcore.Timeout(10.0, connect=CONNECT_TIMEOUT)


def socks_url(port: int, scheme: str = "socks5", auth: tuple[str, str] | None = None) -> str:
    userinfo = f"{auth[0]}:{auth[1]}@" if auth else ""
    return f"{scheme}://{userinfo}127.0.0.1:{port}"


class Recorder:
    """A trace callback keeping every event and its info."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, typing.Any]]] = []

    async def __call__(self, name: str, info: dict[str, typing.Any]) -> None:
        self.events.append((name, info))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


# -- microsocks -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_microsocks_plain_origin_keeps_alive(
    microsocks: MicrosocksServer, server: UvicornServer, scheme: str
) -> None:
    proxy = httpcore.Proxy(socks_url(microsocks.port, scheme))
    async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
        for _ in range(3):
            r = await http.request("POST", f"http://localhost:{server.port}/echo_body", body=b"payload")
            assert r.status_code == 200
            assert r.body == b"payload"
        assert len(http.connections) == 1
        assert "socks5" in repr(http.connections[0])


async def test_microsocks_auth(microsocks_auth: MicrosocksServer, server: UvicornServer) -> None:
    user, password = SOCKS_AUTH
    recorder = Recorder()
    for proxy in (
        httpcore.Proxy(microsocks_auth.url, auth=SOCKS_AUTH),
        httpcore.Proxy(socks_url(microsocks_auth.port, "socks5h", SOCKS_AUTH)),
    ):
        async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
            r = await http.request("GET", server.url + "/echo_headers", extensions={"trace": recorder})
            assert r.status_code == 200
            # Nothing of the credentials reaches the origin, a repr or a trace event.
            assert password.encode() not in r.body and user.encode() not in r.body
            assert password not in repr(http.connections) and password not in repr(proxy)
    assert "connection.setup_socks5_connection.complete" in recorder.names()
    assert password not in repr(recorder.events)


async def test_microsocks_wrong_or_missing_credentials(
    microsocks_auth: MicrosocksServer, server: UvicornServer
) -> None:
    wrong = httpcore.Proxy(microsocks_auth.url, auth=("socksuser", "not-the-password"))
    async with httpcore.AsyncConnectionPool(proxy=wrong) as http:
        with pytest.raises(httpcore.ProxyError, match="rejected the user name and password") as info:
            await http.request("GET", server.url + "/")
        assert "not-the-password" not in str(info.value)
        assert http.connections == []
    async with httpcore.AsyncConnectionPool(proxy=microsocks_auth.url) as http:
        with pytest.raises(httpcore.ProxyError, match="may need a user name and password"):
            await http.request("GET", server.url + "/")


async def test_microsocks_tls_origin(
    microsocks: MicrosocksServer, tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(microsocks.port, "socks5h"), ssl_context=client_ssl_context
    ) as http:
        r = await http.request("GET", f"https://localhost:{tls_server.port}/")
        assert r.status_code == 200 and r.body == b"Hello, world!"
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object") is not None
        # The hostname check is against the origin (or its SNI name), not the proxy.
        with pytest.raises(httpcore.ConnectError):
            await http.request(
                "GET",
                f"https://127.0.0.1:{tls_server.port}/",
                extensions={"sni_hostname": "not-the-origin.example"},
            )


async def test_microsocks_http2_origin(
    microsocks: MicrosocksServer, h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(microsocks.port), ssl_context=client_ssl_context, http2=True
    ) as http:
        for _ in range(2):
            r = await http.request("GET", f"https://localhost:{h2_server.port}/")
            assert r.status_code == 200
            assert r.http_version == b"HTTP/2"
        assert len(http.connections) == 1


async def test_socks_proxy_1x_spelling(microsocks_auth: MicrosocksServer, server: UvicornServer) -> None:
    async with httpcore.AsyncSOCKSProxy(
        proxy_url=microsocks_auth.url.encode(), proxy_auth=(b"socksuser", b"s0cks-pa55")
    ) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        assert http._limits.max_connections == 10  # httpcore 1.x's defaults
        assert http._limits.max_keepalive_connections is None
        assert http._limits.keepalive_expiry is None


async def test_socks_proxy_1x_spelling_without_auth(
    microsocks: MicrosocksServer, server: UvicornServer
) -> None:
    url = httpcore.URL(scheme=b"socks5h", host=b"127.0.0.1", port=microsocks.port, target=b"/")
    async with httpcore.AsyncSOCKSProxy(proxy_url=url, max_connections=2, http2=True) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        assert http._limits.max_connections == 2


async def test_1x_pools_expose_the_proxy_url_without_credentials() -> None:
    socks = httpcore.AsyncSOCKSProxy(proxy_url="socks5h://user:pw@localhost:1081")
    assert socks._proxy_url == httpcore.URL(scheme=b"socks5h", host=b"localhost", port=1081, target=b"/")
    http = httpcore.AsyncHTTPProxy(proxy_url="http://user:pw@localhost:123", proxy_auth=("a", "b"))
    assert http._proxy_url == httpcore.URL(scheme=b"http", host=b"localhost", port=123, target=b"/")
    assert "pw" not in repr(socks._proxy_url) + repr(http._proxy_url)


async def test_socks_proxy_1x_spelling_refusals() -> None:
    with pytest.raises(httpcore.UnsupportedProtocol, match="socks5"):
        httpcore.AsyncSOCKSProxy(proxy_url="http://127.0.0.1:3128")
    with pytest.raises(httpcore.ProxyError, match="at most 255") as info:
        httpcore.AsyncSOCKSProxy(proxy_url="socks5://127.0.0.1:1080", proxy_auth=("u", "p" * 256))
    assert "ppp" not in str(info.value)


# -- pproxy -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_pproxy_plain_and_tls_origins(
    pproxy_socks: PproxyServer,
    server: UvicornServer,
    tls_server: UvicornServer,
    client_ssl_context: ssl.SSLContext,
    scheme: str,
) -> None:
    proxy = socks_url(pproxy_socks.port, scheme)
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=client_ssl_context) as http:
        r = await http.request("GET", f"http://localhost:{server.port}/")
        assert r.body == b"Hello, world!"
        r = await http.request("GET", f"https://localhost:{tls_server.port}/")
        assert r.body == b"Hello, world!"


async def test_pproxy_auth(pproxy_socks_auth: PproxyServer, server: UvicornServer) -> None:
    async with httpcore.AsyncSOCKSProxy(pproxy_socks_auth.url, proxy_auth=SOCKS_AUTH) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200


async def test_pproxy_wrong_credentials(server: UvicornServer) -> None:
    with PproxyServer(auth=SOCKS_AUTH) as pproxy:  # one of its own: see PproxyServer
        proxy = httpcore.Proxy(pproxy.url, auth=(SOCKS_AUTH[0], "wrong"))
        async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
            # pproxy closes the connection rather than answer with a failure status.
            with pytest.raises(httpcore.ProxyError, match="user name and password") as info:
                await http.request("GET", server.url + "/")
            assert "wrong" not in str(info.value)


# -- the scripted SOCKS5 server ---------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("socks5", "localhost", SOCKSRequest(1, "127.0.0.1", 0)),  # resolved by us
        ("socks5h", "localhost", SOCKSRequest(3, "localhost", 0)),  # resolved by the proxy
        ("socks5h", "127.0.0.1", SOCKSRequest(1, "127.0.0.1", 0)),  # an IP stays an IP
    ],
)
async def test_what_the_proxy_is_sent(
    raw_server: RawServerFactory, server: UvicornServer, scheme: str, host: str, expected: SOCKSRequest
) -> None:
    script = SOCKSScript()
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port, scheme)) as http:
        r = await http.request("GET", f"http://{host}:{server.port}/")
        assert r.status_code == 200
    assert script.requests == [SOCKSRequest(expected.atyp, expected.host, server.port)]
    assert script.greetings == [b"\x05\x01\x00"]


async def test_ipv6_origin(raw_server: RawServerFactory, server_ipv6: UvicornServer) -> None:
    script = SOCKSScript(bound="ipv6")
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port, "socks5h")) as http:
        r = await http.request("GET", f"http://[::1]:{server_ipv6.port}/")
        assert r.status_code == 200
    assert script.requests == [SOCKSRequest(4, "::1", server_ipv6.port)]


@pytest.mark.parametrize("bound", ["ipv4", "ipv6", "domain"])
async def test_reply_trickled_byte_by_byte(
    raw_server: RawServerFactory, server: UvicornServer, bound: typing.Literal["ipv4", "ipv6", "domain"]
) -> None:
    srv = raw_server(SOCKSScript(bound=bound, trickle=0.002))
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port)) as http:
        r = await http.request("GET", server.url + "/")
        assert r.body == b"Hello, world!"


async def test_credentials_go_to_the_proxy_only(raw_server: RawServerFactory, server: UvicornServer) -> None:
    script = SOCKSScript(auth=(b"alice", b"pa\xc3\x9f"))
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(
        proxy=httpcore.Proxy(socks_url(srv.port), auth=("alice", "paß"))
    ) as http:
        r = await http.request("GET", server.url + "/echo_headers")
        assert r.status_code == 200
        assert b"alice" not in r.body
    assert script.credentials == [(b"alice", b"pa\xc3\x9f")]
    assert script.greetings == [b"\x05\x02\x02\x00"]


async def test_percent_encoded_credentials_from_the_url(
    raw_server: RawServerFactory, server: UvicornServer
) -> None:
    script = SOCKSScript(auth=(b"me@home", b"p@ss:w/rd%"))
    srv = raw_server(script)
    proxy = f"socks5://me%40home:p%40ss%3Aw%2Frd%25@127.0.0.1:{srv.port}"
    async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        assert "p%40ss" not in repr(http.connections) and "p@ss" not in repr(http.connections)
    assert script.credentials == [(b"me@home", b"p@ss:w/rd%")]


async def test_credentials_too_long_for_rfc1929(raw_server: RawServerFactory) -> None:
    script = SOCKSScript(auth=(b"u", b"p"))
    srv = raw_server(script)
    proxy = httpcore.Proxy(socks_url(srv.port), auth=("u" * 256, "p"))
    async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
        with pytest.raises(httpcore.ProxyError, match="user name is 256 bytes long"):
            await http.request("GET", "http://127.0.0.1:1/")
        assert http.connections == []
    assert script.credentials == []  # refused before anything was sent


@pytest.mark.parametrize("code", sorted(REPLY_MESSAGES))
async def test_every_reply_code(raw_server: RawServerFactory, code: int) -> None:
    srv = raw_server(SOCKSScript(reply_code=code))
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port, "socks5h")) as http:
        with pytest.raises(httpcore.ProxyError) as info:
            await http.request("GET", "http://origin.example:8080/")
        assert http.connections == []
    reason = f"{REPLY_MESSAGES[code]} (reply 0x{code:02x})"
    assert str(info.value) == f"The SOCKS proxy could not connect to origin.example:8080: {reason}"


class TwoAddressBackend(AsyncRunningBackend):
    """Resolves every name to an address the proxy refuses, then one that works."""

    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]


async def test_next_address_after_a_refused_one(raw_server: RawServerFactory, server: UvicornServer) -> None:
    script = SOCKSScript(refuse_hosts=frozenset({"127.0.0.2"}))
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(srv.port), network_backend=TwoAddressBackend()
    ) as http:
        r = await http.request("GET", f"http://origin.example:{server.port}/")
        assert r.status_code == 200
    assert [request.host for request in script.requests] == ["127.0.0.2", "127.0.0.1"]
    assert srv.connections_accepted == 2  # a refusal ends a proxy connection: a new one per address


async def test_first_address_taken_when_it_works(raw_server: RawServerFactory, server: UvicornServer) -> None:
    script = SOCKSScript()
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(srv.port), network_backend=FirstWorksBackend()
    ) as http:
        r = await http.request("GET", f"http://origin.example:{server.port}/")
        assert r.status_code == 200
    assert [request.host for request in script.requests] == ["127.0.0.1"]


class FirstWorksBackend(AsyncRunningBackend):
    async def resolve(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        return ["127.0.0.1", "127.0.0.2"]


async def test_no_next_address_after_a_policy_refusal(raw_server: RawServerFactory) -> None:
    script = SOCKSScript(reply_code=0x02)
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(srv.port), network_backend=TwoAddressBackend()
    ) as http:
        with pytest.raises(httpcore.ProxyError, match="not allowed by ruleset"):
            await http.request("GET", "http://origin.example/")
    assert len(script.requests) == 1


async def test_every_address_refused(raw_server: RawServerFactory) -> None:
    script = SOCKSScript(refuse_hosts=frozenset({"127.0.0.2", "127.0.0.1"}))
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(srv.port), network_backend=TwoAddressBackend()
    ) as http:
        with pytest.raises(
            httpcore.ProxyError, match=r"127\.0\.0\.1:80: connection refused by destination host"
        ):
            await http.request("GET", "http://origin.example/")
        assert http.connections == []
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "answered in HTTP"),
        (b"\x04\x5a\x00\x00", "not a SOCKS5 proxy"),
        (b"\x05\x00\x05\x00\x00\x01", "unexpected bytes"),
    ],
)
async def test_garbage_answers(raw_server: RawServerFactory, answer: bytes, message: str) -> None:
    srv = raw_server(SOCKSScript(raw_answer=answer))
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port), timeout=STALL_TIMEOUT) as http:
        with pytest.raises(httpcore.ProxyError, match=message):
            await http.request("GET", "http://127.0.0.1:1/")
        assert http.connections == []


async def test_proxy_closes_mid_handshake(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.recv(3)
        conn.send(b"\x05")
        conn.close()

    srv = raw_server(handler)
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port)) as http:
        with pytest.raises(
            httpcore.ProxyError, match="closed the connection before choosing an authentication method"
        ):
            await http.request("GET", "http://127.0.0.1:1/")


async def test_proxy_resets_mid_handshake(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.recv(3)
        conn.reset()

    srv = raw_server(handler)
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port)) as http:
        with pytest.raises(httpcore.ConnectError, match="failed during the handshake"):
            await http.request("GET", "http://127.0.0.1:1/")


@pytest.mark.parametrize("step", STALL_STEPS)
async def test_stall_at_every_step_is_connect_timeout(raw_server: RawServerFactory, step: str) -> None:
    auth = (b"u", b"p") if step == "auth" else None
    srv = raw_server(SOCKSScript(stall=step, auth=auth))  # type: ignore[arg-type]
    proxy = httpcore.Proxy(socks_url(srv.port, "socks5h"), auth=auth)
    async with httpcore.AsyncConnectionPool(proxy=proxy, timeout=STALL_TIMEOUT) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await http.request("GET", "http://origin.example/")
        elapsed = time.monotonic() - started
        assert http.connections == []
    assert CONNECT_TIMEOUT * 0.9 <= elapsed < CONNECT_TIMEOUT + 3.0


async def test_connect_timeout_is_one_deadline(raw_server: RawServerFactory, server: UvicornServer) -> None:
    """Each byte of the reply comes well within any read timeout; the whole does not
    come within the connect timeout."""
    srv = raw_server(SOCKSScript(trickle=0.15))
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port), timeout=STALL_TIMEOUT) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await http.request("GET", server.url + "/")
        assert time.monotonic() - started < CONNECT_TIMEOUT + 3.0


async def test_tls_origin_stalls_after_the_socks_reply(
    raw_server: RawServerFactory, client_ssl_context: ssl.SSLContext
) -> None:
    """The origin accepts through the proxy and never answers the TLS handshake."""
    silent = raw_server(lambda conn: conn.sleep(30))
    srv = raw_server(SOCKSScript())
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(srv.port), ssl_context=client_ssl_context, timeout=STALL_TIMEOUT
    ) as http:
        started = time.monotonic()
        with pytest.raises(httpcore.ConnectTimeout):
            await http.request("GET", f"https://127.0.0.1:{silent.port}/")
        assert time.monotonic() - started < CONNECT_TIMEOUT + 3.0


async def test_unresolvable_name_with_socks5(raw_server: RawServerFactory) -> None:
    script = SOCKSScript()
    srv = raw_server(script)
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port)) as http:
        with pytest.raises(httpcore.ConnectError, match="Could not resolve"):
            await http.request("GET", "http://name.invalid/", timeout=5.0)
    assert script.requests == []


def closed_port() -> int:
    sock = bind_listener("127.0.0.1")
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def test_pool_options_apply_to_the_proxy_connection(
    raw_server: RawServerFactory, server: UvicornServer
) -> None:
    recorder = Recorder()
    async with httpcore.AsyncConnectionPool(proxy=socks_url(closed_port()), retries=2) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", server.url + "/", extensions={"trace": recorder})
    assert recorder.names().count("connection.connect_tcp.started") == 3

    srv = raw_server(SOCKSScript())
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    async with httpcore.AsyncConnectionPool(
        proxy=socks_url(srv.port), local_address="127.0.0.1", socket_options=options
    ) as http:
        r = await http.request("GET", server.url + "/")
        sock = r.extensions["network_stream"].get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getpeername()[1] == srv.port  # the stream is the proxy connection


async def test_trace_events_and_repr(raw_server: RawServerFactory, server: UvicornServer) -> None:
    srv = raw_server(SOCKSScript(auth=(b"bob", b"hunter2")))
    recorder = Recorder()
    proxy = socks_url(srv.port, "socks5h", ("bob", "hunter2"))
    async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
        r = await http.request("GET", server.url + "/", extensions={"trace": recorder})
        assert r.status_code == 200
        text = repr(http.connections)
        assert "hunter2" not in text and "bob" not in text
    assert recorder.names()[:4] == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.setup_socks5_connection.started",
        "connection.setup_socks5_connection.complete",
    ]
    assert recorder.events[2][1] == {"host": "127.0.0.1", "port": server.port, "remote_dns": True}
    assert "hunter2" not in repr(recorder.events)
    assert json.dumps([name for name, _ in recorder.events])


async def test_trace_of_a_refusal(raw_server: RawServerFactory) -> None:
    srv = raw_server(SOCKSScript(reply_code=0x04))
    recorder = Recorder()
    async with httpcore.AsyncConnectionPool(proxy=socks_url(srv.port, "socks5h")) as http:
        with pytest.raises(httpcore.ProxyError, match="host unreachable"):
            await http.request("GET", "http://origin.example/", extensions={"trace": recorder})
    name, info = recorder.events[-1]
    assert name == "connection.setup_socks5_connection.failed"
    assert isinstance(info["exception"], httpcore.ProxyError)


async def test_proxy_reached_over_a_unix_socket(
    raw_server: RawServerFactory, server: UvicornServer, tmp_path: pathlib.Path
) -> None:
    script = SOCKSScript()
    srv = raw_server(script)
    with UnixForwarder(str(tmp_path / "socks.sock"), srv.port) as forwarder:
        # The proxy URL's address is not dialled: uds= says where the proxy is.
        async with httpcore.AsyncConnectionPool(proxy=socks_url(closed_port()), uds=forwarder.path) as http:
            r = await http.request("GET", server.url + "/")
            assert r.status_code == 200
    assert script.requests == [SOCKSRequest(1, "127.0.0.1", server.port)]


@pytest.mark.usefixtures("server_ipv6")  # skips where there is no IPv6 loopback
async def test_proxy_on_ipv6_loopback(raw_server: RawServerFactory, server: UvicornServer) -> None:
    script = SOCKSScript()
    srv = raw_server(script, host="::1")
    async with httpcore.AsyncConnectionPool(proxy=f"socks5h://[::1]:{srv.port}") as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        assert "[::1]" in repr(http.connections)


async def test_http2_prior_knowledge_over_socks(
    microsocks: MicrosocksServer, h2c_server: HypercornServer
) -> None:
    async with httpcore.AsyncConnectionPool(proxy=microsocks.url, http1=False, http2=True) as http:
        r = await http.request("GET", h2c_server.url + "/")
        assert r.status_code == 200
        assert r.http_version == b"HTTP/2"
