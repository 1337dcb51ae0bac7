"""HTTP/2 against nginx: a server other than the Python ones the rest of the suite uses.

Skipped when no nginx binary is installed. nginx runs as a child process from a
throw-away prefix directory: one worker, HTTP/2 over TLS (ALPN) and with prior knowledge
on plain TCP, a small response, an 8 MiB static file, and a location that answers a
POST without reading its body (nginx then resets the upload with NO_ERROR).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import httpcore
from tests.servers import tls
from tests.servers.app import pattern

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()), None
)
BIG = 8 * 1024 * 1024

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

CONFIG = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        listen 127.0.0.1:{plain_port} http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {prefix}/www;
        location = / {{ return 200 "hello from nginx"; }}
        location = /early {{ client_max_body_size 0; return 403 "no"; }}
        location = /big {{ }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Nginx:
    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.tls_port = _free_port()
        self.plain_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert NGINX is not None
        prefix = self.prefix
        prefix.chmod(0o755)  # started as root, the worker runs as nobody
        (prefix / "www").mkdir()
        (prefix / "tmp").mkdir()
        (prefix / "tmp").chmod(0o777)
        (prefix / "www" / "big").write_bytes(pattern(BIG))
        (prefix / "www" / "big").chmod(0o644)
        cert = tls.get_server_cert()
        cert.private_key_pem.write_to_path(str(prefix / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(prefix / "cert.pem"))
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(str(prefix / "cert.pem"), append=True)
        conf = prefix / "nginx.conf"
        conf.write_text(
            CONFIG.format(
                prefix=prefix,
                tls_port=self.tls_port,
                plain_port=self.plain_port,
                cert=prefix / "cert.pem",
                key=prefix / "key.pem",
            )
        )
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = prefix / "error.log"
                pytest.skip("nginx did not start: " + (log.read_text() if log.exists() else "?"))
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.plain_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.skip("nginx did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    # Not under pytest's tmp_path: its parents are private, and nginx's worker runs as
    # nobody when we are root.
    server = Nginx(Path(tempfile.mkdtemp(prefix="httpcore-nginx-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.prefix, ignore_errors=True)


def test_sync_over_tls_and_prior_knowledge(nginx: Nginx, client_ssl_context: ssl.SSLContext) -> None:
    with httpcore.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        r = pool.request("GET", f"https://localhost:{nginx.tls_port}/")
        assert (r.http_version, r.body) == (b"HTTP/2", b"hello from nginx")
        r = pool.request("GET", f"https://localhost:{nginx.tls_port}/big")
        assert r.body == pattern(BIG)
        r = pool.request("POST", f"https://localhost:{nginx.tls_port}/early", body=b"x" * (4 * 1024 * 1024))
        assert (r.status_code, r.body) == (403, b"no")
        r = pool.request("GET", f"https://localhost:{nginx.tls_port}/")
        assert r.status_code == 200
        assert len(pool.connections) == 1
    with httpcore.ConnectionPool(http1=False, http2=True) as pool:
        r = pool.request("GET", f"http://127.0.0.1:{nginx.plain_port}/big")
        assert r.body == pattern(BIG)


async def test_async_burst(nginx: Nginx, client_ssl_context: ssl.SSLContext) -> None:
    url = f"https://localhost:{nginx.tls_port}"
    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        responses = await asyncio.gather(*[pool.request("GET", url + "/") for _ in range(300)])
        assert {r.body for r in responses} == {b"hello from nginx"}
        assert len(pool.connections) == 3  # nginx allows 128 streams per connection
        bodies = await asyncio.gather(*[pool.request("GET", url + "/big") for _ in range(4)])
        assert all(r.body == pattern(BIG) for r in bodies)


async def test_server_goaway_after_its_request_limit(nginx: Nginx) -> None:
    """nginx closes an HTTP/2 connection after 1000 requests with a graceful GOAWAY:
    the streams it did not take are sent again on a new connection."""
    url = f"http://127.0.0.1:{nginx.plain_port}/"
    async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
        for _ in range(12):
            responses = await asyncio.gather(*[pool.request("GET", url) for _ in range(100)])
            assert {r.body for r in responses} == {b"hello from nginx"}
        assert len(pool.connections) == 1
