"""HTTPCoreAdapter under a real ``requests.Session``: sending, TLS settings, timeouts,
errors as requests raises them, retries, threads sharing a session, HTTP/2.

Servers are the loopback fixtures (uvicorn, hypercorn, the raw fault server, trustme).
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import ssl
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import trustme
import urllib3
from urllib3.util import Retry
from urllib3.util import Timeout as Urllib3Timeout

import httpcore
from httpcore.contrib.requests import HTTPCoreAdapter
from httpcore.contrib.requests._adapter import Pools, _content
from httpcore.contrib.requests._errors import SEND_ERRORS, Endpoint, body_error, requests_error, send_error
from tests.conftest import PROXY_AUTH, SOCKS_AUTH
from tests.servers import tls
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.raw import RawConnection, RawServerFactory, keep_alive, ok, response, scripted
from tests.servers.socks import MicrosocksServer
from tests.servers.tinyproxy import TinyProxy


def mounted(adapter: HTTPCoreAdapter | None = None) -> requests.Session:
    session = requests.Session()
    adapter = adapter or HTTPCoreAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with mounted() as s:
        yield s


def run_threads(count: int, work: Callable[[int], typing.Any]) -> list[typing.Any]:
    """``work(i)`` in ``count`` threads released together."""
    barrier = threading.Barrier(count)

    def start(index: int) -> typing.Any:
        barrier.wait(5)
        return work(index)

    with ThreadPoolExecutor(count) as executor:
        return list(executor.map(start, range(count)))


def the_adapter(session: requests.Session) -> HTTPCoreAdapter:
    adapter = session.get_adapter("http://x")
    assert isinstance(adapter, HTTPCoreAdapter)
    return adapter


# -- sending ---------------------------------------------------------------------------


def test_get_post_and_headers(session: requests.Session, server: UvicornServer) -> None:
    r = session.get(server.url + "/", params={"a": "1"})
    assert r.status_code == 200 and r.text == "Hello, world!" and r.ok
    assert r.raw.version == 11 and r.url == server.url + "/?a=1"
    r = session.get(server.url + "/echo_headers", headers={"X-Custom": "yes", "X-Bytes": b"b"})
    seen = dict(json.loads(r.content)["headers"])
    assert seen["x-custom"] == "yes" and seen["x-bytes"] == "b"
    assert seen["host"] == server.url.split("//")[1]
    assert "gzip" in seen["accept-encoding"]
    r = session.post(server.url + "/echo_body", data={"k": "v"})
    assert r.content == b"k=v"
    r = session.post(server.url + "/echo_body", json={"k": "é"})
    assert json.loads(r.content) == {"k": "é"}
    r = session.put(server.url + "/echo_body", data="text body é")
    assert r.content == "text body é".encode()
    assert session.get(server.url + "/status/404").status_code == 404


@pytest.mark.parametrize(
    ("body", "expected_chunks"),
    [
        (iter([b"ab", b"", "cd", bytearray(b"ef")]), None),
        (io.BytesIO(b"abcdef"), 1),
        (io.StringIO("abcdef"), None),
    ],
)
def test_streamed_request_bodies(
    session: requests.Session, server: UvicornServer, body: typing.Any, expected_chunks: int | None
) -> None:
    r = session.post(server.url + "/upload", data=body)
    assert json.loads(r.content)["length"] == 6


def test_body_kinds() -> None:
    assert _content(None, False) is None
    assert _content(b"x", False) == b"x"
    assert list(_content(b"x", True)) == [b"x"]
    assert _content(b"", True) == b""
    assert _content("é", False) == "é".encode()
    assert _content(bytearray(b"ab"), False) == b"ab"
    assert _content(memoryview(b"ab"), False) == b"ab"
    assert list(_content(io.BytesIO(b"abc"), True)) == [b"abc"]


def test_unseekable_file_body(session: requests.Session, server: UvicornServer) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = [b"abc", b"def"]

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self.data.pop(0) if self.data else b""

        def tell(self) -> int:
            raise io.UnsupportedOperation("not seekable")

    r = session.post(server.url + "/upload", data=Pipe())
    assert json.loads(r.content)["length"] == 6


def test_bytes_body_without_content_length_is_chunked(raw_server: RawServerFactory) -> None:
    server = raw_server(keep_alive(ok()))
    with mounted() as s:
        request = requests.Request("POST", server.url, data=b"hello").prepare()
        del request.headers["Content-Length"]
        assert s.send(request).status_code == 200
    assert b"transfer-encoding: chunked" in server.requests[0].lower()
    assert b"5\r\nhello\r\n0\r\n\r\n" in server.requests[0]


def test_redirects_and_cookies_through_session(
    session: requests.Session, raw_server: RawServerFactory
) -> None:
    def handler(conn: RawConnection) -> None:
        while (request := conn.read_request(5)) is not None:
            if request.startswith(b"GET /start"):
                conn.send(response(302, b"", [(b"Location", b"/end"), (b"Set-Cookie", b"c=1; Path=/")]))
            else:
                conn.send(ok(b"cookie" if b"Cookie: c=1" in request else b"none"))

    url = raw_server(handler).url
    r = session.get(url + "/start")
    assert r.content == b"cookie" and [h.status_code for h in r.history] == [302]


def test_url_with_credentials_and_fragment(session: requests.Session, server: UvicornServer) -> None:
    host = server.url.split("//")[1]
    r = session.get(f"http://user:pass@{host}/echo_headers#frag")
    data = json.loads(r.content)
    assert data["path"] == "/echo_headers"
    assert dict(data["headers"])["authorization"].startswith("Basic ")


def test_invalid_urls_and_headers(session: requests.Session, server: UvicornServer) -> None:
    with pytest.raises(requests.exceptions.InvalidURL):
        session.get("http://127.0.0.1:99999/")
    adapter = the_adapter(session)
    request = requests.Request("GET", server.url).prepare()
    request.url = "http:///nohost"
    with pytest.raises(requests.exceptions.InvalidURL, match="No host"):
        adapter.send(request)
    request.url = "http://exa mple.com/"
    with pytest.raises(requests.exceptions.InvalidURL):
        adapter.send(request)
    request = requests.Request("GET", server.url).prepare()
    request.headers["Bad Name"] = "x"
    with pytest.raises(requests.exceptions.InvalidHeader):
        adapter.send(request)


def test_conflicting_content_lengths(session: requests.Session, raw_server: RawServerFactory) -> None:
    url = raw_server(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")).url
    with pytest.raises(requests.exceptions.InvalidHeader, match="multiple unmatching"):
        session.get(url)


def test_truncated_head_is_a_broken_body(session: requests.Session, raw_server: RawServerFactory) -> None:
    url = raw_server(scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n")).url
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        session.get(url)


# -- errors ----------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused(session: requests.Session) -> None:
    port = _closed_port()
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        session.get(f"http://127.0.0.1:{port}/path")
    message = str(info.value)
    assert (
        f"HTTPConnectionPool(host='127.0.0.1', port={port}): Max retries exceeded with url: /path" in message
    )
    assert "Failed to establish a new connection" in message
    assert "NewConnectionError" in message
    assert not isinstance(info.value, requests.exceptions.ConnectTimeout)
    assert isinstance(info.value.args[0], urllib3.exceptions.MaxRetryError)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name lookup fails at once, as for an unknown name (nothing leaves the machine)."""
    import socket

    def fail(host: object, *args: object, **kwargs: object) -> typing.NoReturn:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)


@pytest.mark.usefixtures("no_dns")
def test_name_resolution_error(session: requests.Session) -> None:
    with pytest.raises(
        requests.exceptions.ConnectionError, match=r"Failed to resolve 'nonexistent\.invalid'"
    ):
        session.get("http://nonexistent.invalid/")


def test_read_timeout(session: requests.Session, server: UvicornServer) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout, match=r"Read timed out. \(read timeout=0.2\)"):
        session.get(server.url + "/slow_headers?delay=2", timeout=0.2)
    with pytest.raises(requests.exceptions.Timeout):
        session.get(server.url + "/slow_headers?delay=2", timeout=(5, 0.2))
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(server.url + "/slow_headers?delay=2", timeout=Urllib3Timeout(connect=5, read=0.2))  # type: ignore[arg-type]
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(server.url + "/slow_headers?delay=2", timeout=Urllib3Timeout(total=0.2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be an int, float or None"):
        session.get(server.url, timeout=[5, 5])  # type: ignore[arg-type] # only a tuple is a pair, as with urllib3
    assert session.get(server.url + "/slow_headers?delay=0.1", timeout=None).text == "slow"


@pytest.mark.parametrize(
    ("timeout", "message"), [((1, 2, 3), "Pass a \\(connect, read\\)"), ("x", "int, float")]
)
def test_invalid_timeouts(
    session: requests.Session, server: UvicornServer, timeout: typing.Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        session.get(server.url, timeout=timeout)


def test_server_closes_without_response(session: requests.Session, raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        conn.close()

    with pytest.raises(requests.exceptions.ConnectionError, match="Connection aborted"):
        session.get(raw_server(handler).url)


def test_error_table_by_type() -> None:
    where = Endpoint("https", "example.com", 443, "https://example.com/a", "/a", 1.5, 2.5)
    assert str(where) == "HTTPSConnectionPool(host='example.com', port=443)"
    cases: list[tuple[httpcore.HTTPCoreError, type[Exception]]] = [
        (httpcore.ConnectTimeout("slow"), requests.exceptions.ConnectTimeout),
        (httpcore.PoolTimeout("busy"), requests.exceptions.ConnectionError),
        (httpcore.PoolClosed("closed"), requests.exceptions.ConnectionError),
        (httpcore.ProxyError("refused"), requests.exceptions.ProxyError),
        (httpcore.UnsupportedProtocol("ftp"), requests.exceptions.InvalidURL),
        (httpcore.WriteTimeout("slow"), requests.exceptions.ConnectionError),
        (httpcore.WriteError("pipe"), requests.exceptions.ConnectionError),
    ]
    retry = Retry(0, read=False)
    for exc, expected in cases:
        error = send_error(exc, where)
        try:
            if isinstance(error, requests.exceptions.RequestException):
                raise error
            retry.increment("GET", "/a", error=error, _pool=where)  # type: ignore[arg-type]
            raise AssertionError("not exhausted")
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException) as raised:
            mapped = requests_error(raised, None)
        assert type(mapped) is expected, (exc, mapped)
    timeout = send_error(httpcore.ConnectTimeout("slow"), where)
    assert "Connection to example.com timed out. (connect timeout=1.5)" in str(timeout)
    ssl_error = httpcore.ConnectError("bad cert")
    ssl_error.__cause__ = ssl.SSLError(1, "bad")
    assert isinstance(send_error(ssl_error, where), urllib3.exceptions.SSLError)
    assert isinstance(body_error(httpcore.ReadError("x"), where), urllib3.exceptions.ProtocolError)
    assert set(SEND_ERRORS) >= {httpcore.HTTPCoreError}
    assert isinstance(requests_error(urllib3.exceptions.SSLError("x"), None), requests.exceptions.SSLError)
    proxy = requests_error(urllib3.exceptions.ProxyError("x", OSError()), None)
    assert isinstance(proxy, requests.exceptions.ProxyError)
    read = requests_error(urllib3.exceptions.ReadTimeoutError(where, "/", "x"), None)  # type: ignore[arg-type]
    assert isinstance(read, requests.exceptions.ReadTimeout)
    assert isinstance(requests_error(OSError("x"), None), requests.exceptions.ConnectionError)
    other = KeyError("x")
    assert requests_error(other, None) is other
    pool: typing.Any = where
    retry_error = urllib3.exceptions.MaxRetryError(
        pool, "/", urllib3.exceptions.ResponseError("too many 500")
    )
    assert isinstance(requests_error(retry_error, None), requests.exceptions.RetryError)


# -- TLS -------------------------------------------------------------------------------


def test_verify_with_ca_bundle(
    session: requests.Session, tls_server: UvicornServer, cert_files: tls.CertFiles
) -> None:
    r = session.get(tls_server.url + "/", verify=str(cert_files.ca_certfile))
    assert r.text == "Hello, world!"
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        session.get(tls_server.url + "/")
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning, match="Unverified HTTPS request"):
        assert session.get(tls_server.url + "/", verify=False).status_code == 200
    pools = the_adapter(session).poolmanager.pools
    assert len(pools) == 3


def test_verify_with_ca_directory(
    session: requests.Session, tls_server: UvicornServer, cert_files: tls.CertFiles, tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - openssl is on every machine we test on
        pytest.skip("needs the openssl command to hash the CA directory")
    digest = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(cert_files.ca_certfile)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shutil.copy(cert_files.ca_certfile, tmp_path / f"{digest}.0")
    assert session.get(tls_server.url + "/", verify=str(tmp_path)).status_code == 200


def test_missing_ca_bundle(session: requests.Session, tls_server: UvicornServer, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="Could not find a suitable TLS CA certificate bundle"):
        session.get(tls_server.url + "/", verify=str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(requests.exceptions.SSLError):
        session.get(tls_server.url + "/", verify=str(bad))


def test_client_certificate(session: requests.Session, raw_server: RawServerFactory, tmp_path: Path) -> None:
    ca = tls.get_ca()
    server_context = tls.server_ssl_context()
    server_context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_context)
    seen: list[object] = []

    def handler(conn: RawConnection) -> None:
        seen.append(typing.cast(typing.Any, conn.sock).getpeercert())
        keep_alive(ok(b"mtls"))(conn)

    server = raw_server(handler, ssl_context=server_context)
    client = ca.issue_cert("client@example.com")
    certfile, keyfile, cafile = tmp_path / "c.pem", tmp_path / "c.key", tmp_path / "ca.pem"
    client.cert_chain_pems[0].write_to_path(str(certfile))
    client.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    r = session.get(server.url, verify=str(cafile), cert=(str(certfile), str(keyfile)))
    assert r.content == b"mtls" and seen and seen[0]
    both = tmp_path / "both.pem"
    both.write_bytes(keyfile.read_bytes() + certfile.read_bytes())
    assert session.get(server.url, verify=str(cafile), cert=str(both)).content == b"mtls"
    with pytest.raises(OSError, match="Could not find the TLS certificate file"):
        session.get(server.url, verify=str(cafile), cert=str(tmp_path / "nope.pem"))


def test_custom_ssl_context_from_init_poolmanager(tls_server: UvicornServer) -> None:
    context = tls.client_ssl_context()

    class Custom(HTTPCoreAdapter):
        def init_poolmanager(self, *args: typing.Any, **kwargs: typing.Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

    with mounted(Custom()) as s:
        assert s.get(tls_server.url + "/").status_code == 200


# -- retries ---------------------------------------------------------------------------


def test_status_retries(raw_server: RawServerFactory) -> None:
    server = raw_server(keep_alive(response(503, b"busy", [(b"Retry-After", b"0")])))
    adapter = HTTPCoreAdapter(max_retries=Retry(total=2, status_forcelist=[503]))
    with (
        mounted(adapter) as s,
        pytest.raises(requests.exceptions.RetryError, match="too many 503 error responses"),
    ):
        s.get(server.url)
    assert len(server.requests) == 3
    adapter = HTTPCoreAdapter(max_retries=Retry(total=1, status_forcelist=[503], raise_on_status=False))
    with mounted(adapter) as s:
        r = s.get(server.url)
        assert r.status_code == 503 and r.content == b"busy"
        # Only methods in allowed_methods are retried.
        assert s.post(server.url).status_code == 503
    assert len(server.requests) == 6


def test_status_retry_then_success_rewinds_the_body(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        while (request := conn.read_request(5)) is not None:
            if conn.server.connections_accepted and len(conn.server.requests) < 3:
                conn.send(response(500, b"again"))
            else:
                conn.send(ok(request.split(b"\r\n\r\n", 1)[1]))

    server = raw_server(handler)
    retry = Retry(total=3, status_forcelist=[500], allowed_methods=None, backoff_factor=0)
    with mounted(HTTPCoreAdapter(max_retries=retry)) as s:
        assert s.put(server.url, data=io.BytesIO(b"payload")).content == b"payload"
        assert s.put(server.url, data=b"bytes").content == b"bytes"


def test_retry_after_is_respected(raw_server: RawServerFactory) -> None:
    server = raw_server(
        scripted(response(429, b"", [(b"Retry-After", b"1")]), ok(b"done"), close_after=False)
    )
    with mounted(HTTPCoreAdapter(max_retries=Retry(total=1))) as s:
        start = time.monotonic()
        assert s.get(server.url).content == b"done"
        assert time.monotonic() - start >= 0.9


def test_connect_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    adapter = HTTPCoreAdapter(max_retries=Retry(connect=2, backoff_factor=0.1))
    with (
        mounted(adapter) as s,
        pytest.raises(requests.exceptions.ConnectionError, match="Max retries exceeded"),
    ):
        s.get(f"http://127.0.0.1:{port}/")
    assert len(slept) == 1  # urllib3 does not back off before the first retry
    with mounted(HTTPCoreAdapter(max_retries=3)) as s, pytest.raises(requests.exceptions.ConnectionError):
        s.get(f"http://127.0.0.1:{port}/")


def test_read_retries(raw_server: RawServerFactory) -> None:
    def handler(conn: RawConnection) -> None:
        if conn.read_request() is None:  # pragma: no cover - the client always sends
            return
        if conn.index == 0:
            conn.sleep(2)
            return
        conn.send(ok(b"second"))

    server = raw_server(handler)
    with mounted(HTTPCoreAdapter(max_retries=Retry(read=1))) as s:
        assert s.get(server.url, timeout=0.3).content == b"second"
        with pytest.raises(requests.exceptions.ReadTimeout):  # POST: not retried
            s.post(raw_server(handler).url, timeout=0.3)
    with (
        mounted(HTTPCoreAdapter(max_retries=Retry(total=False))) as s,
        pytest.raises(requests.exceptions.ReadTimeout),
    ):
        s.get(raw_server(handler).url, timeout=0.3)


# -- pools, threads, lifecycle -----------------------------------------------------------


def test_threads_share_one_session(server: UvicornServer) -> None:
    adapter = HTTPCoreAdapter(pool_maxsize=4)
    with mounted(adapter) as s:

        def work(index: int) -> list[str]:
            out = []
            for n in range(20):
                r = s.get(server.url + f"/echo_headers?t={index}&n={n}")
                out.append(json.loads(r.content)["query_string"])
            r = s.get(server.url + "/stream?size=100000&chunk=1000", stream=True)
            assert len(b"".join(r.iter_content(4096))) == 100_000
            return out

        results = run_threads(8, work)
        assert results == [[f"t={i}&n={n}" for n in range(20)] for i in range(8)]
        (pool,) = adapter.poolmanager.pools.values()
        assert len(pool.connections) <= 8


def test_pool_block_limits_connections(raw_server: RawServerFactory) -> None:
    server = raw_server(keep_alive(ok(b"x")))
    adapter = HTTPCoreAdapter(pool_maxsize=2, pool_block=True)
    with mounted(adapter) as s:
        run_threads(6, lambda i: [s.get(server.url).content for _ in range(5)])
    assert server.connections_accepted <= 2


def test_close_leaves_streaming_responses_alone(server: UvicornServer) -> None:
    adapter = HTTPCoreAdapter()
    s = mounted(adapter)
    r = s.get(server.url + "/stream?size=300000&chunk=1000", stream=True)
    idle = s.get(server.url + "/")
    assert idle.ok
    s.close()
    assert adapter.poolmanager.pools == {}
    assert len(r.content) == 300_000  # still readable, as with urllib3
    assert s.get(server.url + "/").ok  # a closed adapter makes new pools
    s.close()
    s.close()


def test_pools_release_bookkeeping() -> None:
    pools = Pools({})
    pool = httpcore.ConnectionPool()
    pools.pools[("k",)] = pool
    pools.acquire(pool)
    pools.acquire(pool)
    pools.clear()
    pools.release(pool)
    assert "[pools: 0]" in repr(pools)
    pools.release(pool)  # the last one closes it
    with pytest.raises(httpcore.PoolClosed):
        pool.request("GET", "http://127.0.0.1:1/")
    other = httpcore.ConnectionPool()
    pools.acquire(other)
    pools.release(other)
    other.close()


def test_get_connection_helpers_return_our_pools(session: requests.Session, server: UvicornServer) -> None:
    adapter = the_adapter(session)
    request = requests.Request("GET", server.url).prepare()
    pool = adapter.get_connection_with_tls_context(request, True)
    assert isinstance(pool, httpcore.ConnectionPool)
    assert adapter.get_connection(server.url) is pool
    assert adapter.request_url(request, {}) == "/"
    assert adapter.proxy_headers("http://u:p@proxy:3128") == {"Proxy-Authorization": "Basic dTpw"}


def test_adapter_pickles(server: UvicornServer) -> None:
    s = mounted(HTTPCoreAdapter(max_retries=3, http2=True))
    copy = pickle.loads(pickle.dumps(s))
    with s, copy:
        adapter = copy.get_adapter("https://x")
        assert isinstance(adapter, HTTPCoreAdapter) and adapter._http2
        assert adapter.max_retries.total == 3
        assert copy.get(server.url).ok


# -- proxies ---------------------------------------------------------------------------


def test_http_proxy_forwarding_and_tunnel(
    session: requests.Session,
    tinyproxy_auth: TinyProxy,
    server: UvicornServer,
    tls_server: UvicornServer,
    cert_files: tls.CertFiles,
) -> None:
    user, password = PROXY_AUTH
    proxy = f"http://{user}:{password}@127.0.0.1:{tinyproxy_auth.port}"
    proxies = {"http": proxy, "https": proxy}
    r = session.get(server.url + "/echo_headers", proxies=proxies)
    assert r.status_code == 200
    assert "proxy-authorization" not in dict(json.loads(r.content)["headers"])
    r = session.get(tls_server.url + "/", proxies=proxies, verify=str(cert_files.ca_certfile))
    assert r.text == "Hello, world!"
    adapter = the_adapter(session)
    assert set(adapter.proxy_manager) == {proxy}
    wrong = f"http://{user}:wrong@127.0.0.1:{tinyproxy_auth.port}"
    assert session.get(server.url + "/", proxies={"http": wrong}).status_code in (401, 407)
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(tls_server.url + "/", proxies={"https": wrong}, verify=str(cert_files.ca_certfile))
    session.close()
    assert all(not pools.pools for pools in adapter.proxy_manager.values())


def test_proxies_from_the_environment(
    session: requests.Session, tinyproxy: TinyProxy, server: UvicornServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(requests.exceptions.ProxyError, match="Unable to connect to proxy"):
        session.get(server.url + "/")
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    assert session.get(server.url + "/").text == "Hello, world!"
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert session.get(server.url + "/").text == "Hello, world!"


def test_socks_proxies(
    session: requests.Session, microsocks_auth: MicrosocksServer, server: UvicornServer
) -> None:
    user, password = SOCKS_AUTH
    port = microsocks_auth.url.rsplit(":", 1)[1]
    for scheme in ("socks5", "socks5h"):
        proxy = f"{scheme}://{user}:{password}@127.0.0.1:{port}"
        r = session.get(server.url + "/echo_headers", proxies={"http": proxy})
        assert json.loads(r.content)["path"] == "/echo_headers"
    with pytest.raises(requests.exceptions.InvalidSchema, match="socks4"):
        session.get(server.url, proxies={"http": f"socks4://127.0.0.1:{port}"})


def test_bad_proxy_urls(session: requests.Session, server: UvicornServer, no_dns: None) -> None:
    with pytest.raises(requests.exceptions.InvalidProxyURL):
        session.get(server.url, proxies={"http": "http://:8080"})
    with pytest.raises(requests.exceptions.ProxyError, match="Failed to resolve"):
        session.get(server.url, proxies={"http": "nonexistent.invalid"})


def test_requests_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests", None)
    monkeypatch.delitem(sys.modules, "httpcore.contrib.requests")
    with pytest.raises(ImportError, match=r"pip install httpcore\[requests\]"):
        __import__("httpcore.contrib.requests")


# -- HTTP/2 ----------------------------------------------------------------------------


def test_http2_threads_multiplex_one_connection(
    h2_server: HypercornServer, cert_files: tls.CertFiles
) -> None:
    adapter = HTTPCoreAdapter(http2=True)
    with mounted(adapter) as s:
        # Per request: REQUESTS_CA_BUNDLE in the environment would win over session.verify.
        verify = str(cert_files.ca_certfile)

        def work(index: int) -> tuple[int, str, str]:
            r = s.get(h2_server.url + f"/echo_headers?i={index}", verify=verify)
            return r.raw.version, r.reason, json.loads(r.content)["query_string"]

        results = run_threads(8, work)
        assert results == [(20, "OK", f"i={i}") for i in range(8)]
        (pool,) = adapter.poolmanager.pools.values()
        assert len(pool.connections) == 1
        r = s.get(h2_server.url + "/status/599", verify=verify)
        assert r.raw.version_string == "HTTP/2" and r.reason == ""


def test_trustme_available() -> None:
    assert isinstance(tls.get_ca(), trustme.CA)
