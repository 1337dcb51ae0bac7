"""HTTP proxies for real: forwarding and CONNECT tunnels through tinyproxy and pproxy
(also as an HTTPS proxy), Basic auth right and wrong, HTTP/1.1 and HTTP/2 origins,
plain and TLS."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import pytest

import httpcore
from tests.conftest import PROXY_AUTH
from tests.servers import tls
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.http_proxy import PproxyHTTP
from tests.servers.tinyproxy import TinyProxy
from tests.servers.tls import CertFiles


def echoed_headers(response: httpcore.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in json.loads(response.body)["headers"]}


async def test_forwarding_plain_origin(tinyproxy: TinyProxy, server: UvicornServer) -> None:
    async with httpcore.AsyncConnectionPool(proxy=httpcore.Proxy(tinyproxy.url)) as http:
        # tinyproxy closes its client connection after every response (without saying
        # so): the POST goes first, on a fresh connection; the GETs are retried if needed.
        r = await http.request("POST", server.url + "/echo_body", body=b"payload")
        assert r.body == b"payload"
        for _ in range(3):
            r = await http.request("GET", server.url + "/echo_headers?x=1")
            assert r.status_code == 200
            body = json.loads(r.body)
            assert body["path"] == "/echo_headers"
            assert body["query_string"] == "x=1"
            assert echoed_headers(r)["host"] == f"127.0.0.1:{server.port}"
        assert len(http.connections) <= 1  # one connection to the proxy, never one per origin


async def test_forwarding_with_auth_keeps_credentials_from_origin(
    tinyproxy_auth: TinyProxy, server: UvicornServer
) -> None:
    user, password = PROXY_AUTH
    url = f"http://{user}:{password}@127.0.0.1:{tinyproxy_auth.port}"
    async with httpcore.AsyncConnectionPool(proxy=url) as http:
        r = await http.request("GET", server.url + "/echo_headers")
        assert r.status_code == 200
        assert "proxy-authorization" not in echoed_headers(r)
        assert password not in repr(http.connections)


async def test_forwarding_with_wrong_auth_is_the_proxys_answer(
    tinyproxy_auth: TinyProxy, server: UvicornServer
) -> None:
    proxy = httpcore.Proxy(tinyproxy_auth.url, auth=("proxyuser", "wrong"))
    async with httpcore.AsyncConnectionPool(proxy=proxy) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code in (401, 407)  # tinyproxy answers a forwarded request with 401


async def test_tunnel_to_tls_origin(
    tinyproxy: TinyProxy, tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(proxy=tinyproxy.url, ssl_context=client_ssl_context) as http:
        for _ in range(3):
            r = await http.request("GET", f"https://localhost:{tls_server.port}/echo_headers")
            assert r.status_code == 200
            assert r.http_version == b"HTTP/1.1"
            assert json.loads(r.body)["scheme"] == "https"
        assert len(http.connections) == 1  # the tunnel is kept and reused


async def test_tunnel_http2_origin_with_auth(
    tinyproxy_auth: TinyProxy, h2_server: HypercornServer, client_ssl_context: ssl.SSLContext
) -> None:
    proxy = httpcore.Proxy(tinyproxy_auth.url, auth=PROXY_AUTH, headers=[(b"X-Proxy-Note", b"hi")])
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=client_ssl_context, http2=True) as http:
        for _ in range(2):
            r = await http.request("GET", f"https://localhost:{h2_server.port}/echo_headers")
            assert r.status_code == 200
            assert r.http_version == b"HTTP/2"
            headers = echoed_headers(r)
            assert "proxy-authorization" not in headers
            assert "x-proxy-note" not in headers
        assert len(http.connections) == 1


async def test_tunnel_wrong_auth_is_proxy_error(
    tinyproxy_auth: TinyProxy, tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    proxy = httpcore.Proxy(tinyproxy_auth.url, auth=("proxyuser", "not-the-password"))
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=client_ssl_context) as http:
        with pytest.raises(httpcore.ProxyError, match="401 Unauthorized") as info:  # tinyproxy says 401
            await http.request("GET", f"https://localhost:{tls_server.port}/")
        assert "not-the-password" not in str(info.value)
        assert http.connections == []


async def test_tunnel_checks_the_origin_certificate(tinyproxy: TinyProxy, tls_server: UvicornServer) -> None:
    # The default context does not trust the test CA: the origin's certificate is refused.
    async with httpcore.AsyncConnectionPool(proxy=tinyproxy.url) as http:
        with pytest.raises(httpcore.ConnectError):
            await http.request("GET", f"https://localhost:{tls_server.port}/")


async def test_http_proxy_1x_spelling(
    tinyproxy_auth: TinyProxy,
    server: UvicornServer,
    tls_server: UvicornServer,
    client_ssl_context: ssl.SSLContext,
) -> None:
    async with httpcore.AsyncHTTPProxy(
        proxy_url=tinyproxy_auth.url.encode(),
        proxy_auth=PROXY_AUTH,
        ssl_context=client_ssl_context,
        max_connections=4,
    ) as http:
        r = await http.request("GET", server.url + "/")
        assert r.status_code == 200
        r = await http.request("GET", f"https://localhost:{tls_server.port}/")
        assert r.status_code == 200
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.AsyncHTTPProxy(proxy_url="socks5://127.0.0.1:1080")


@pytest.fixture(scope="module")
def pproxy_https(cert_files: CertFiles) -> Iterator[PproxyHTTP]:
    proxy = PproxyHTTP(certs=(str(cert_files.certfile), str(cert_files.keyfile)), auth=PROXY_AUTH).start()
    yield proxy
    proxy.stop()


async def test_pproxy_https_proxy_forwarding_and_tls_in_tls(
    pproxy_https: PproxyHTTP,
    server: UvicornServer,
    h2_server: HypercornServer,
    client_ssl_context: ssl.SSLContext,
) -> None:
    proxy = httpcore.Proxy(pproxy_https.url, auth=PROXY_AUTH, ssl_context=tls.client_ssl_context())
    async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=client_ssl_context, http2=True) as http:
        for _ in range(3):
            r = await http.request("GET", server.url + "/echo_headers")
            assert r.status_code == 200
            assert "proxy-authorization" not in echoed_headers(r)
            r = await http.request("GET", f"https://localhost:{h2_server.port}/echo_headers")
            assert r.http_version == b"HTTP/2"
            assert "proxy-authorization" not in echoed_headers(r)
        assert len(http.connections) == 2  # one to the proxy for http://, one tunnel


async def test_pproxy_wrong_credentials(
    cert_files: CertFiles, tls_server: UvicornServer, client_ssl_context: ssl.SSLContext
) -> None:
    pproxy = PproxyHTTP(auth=PROXY_AUTH).start()
    try:
        proxy = httpcore.Proxy(pproxy.url, auth=(PROXY_AUTH[0], "wrong"))
        async with httpcore.AsyncConnectionPool(proxy=proxy, ssl_context=client_ssl_context) as http:
            with pytest.raises(httpcore.ProxyError, match="407") as info:
                await http.request("GET", f"https://localhost:{tls_server.port}/")
            assert "wrong" not in str(info.value)
    finally:
        pproxy.stop()
