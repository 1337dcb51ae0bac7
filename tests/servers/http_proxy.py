"""A small HTTP proxy of our own, plain or TLS (an HTTPS proxy), for the proxy tests.

Theory of operation: a ``RawServer`` handler. Each client connection is read request
by request: ``CONNECT host:port`` opens a TCP connection to the target, answers 200 and
relays bytes both ways until either side closes; any other request (absolute-form
target) is forwarded to its origin on a fresh connection, the answer passed back with
its framing intact but without the origin's ``Connection: close``, so the client's
connection to the proxy stays alive. With ``auth`` set, a request without the right
``Proxy-Authorization`` gets a 407 with a body. Every request head the proxy received
is recorded in ``heads``, so tests see exactly what was sent to the proxy. The relay
is one thread: while it cannot pass bytes on, it reads nothing (the kind of peer that
deadlocks a client which stops reading while it writes); ``buffer_size`` shrinks its
sockets' buffers so that happens after a few kilobytes, not megabytes.
``PproxyHTTP`` runs pproxy (PyPI) as a real HTTP or HTTPS proxy beside it.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import subprocess
import sys
import time
from urllib.parse import urlsplit

from .netutil import bind_listener, format_url
from .raw import RawConnection, RawServer

__all__ = ["PproxyHTTP", "ProxyServer"]

_RELAY_TIMEOUT = 10.0


class ProxyServer:
    """Forwarding and CONNECT on ``host`` (127.0.0.1); TLS to clients with ``ssl_context``."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        buffer_size: int | None = None,
    ) -> None:
        self.heads: list[bytes] = []
        self.buffer_size = buffer_size
        self.connections = 0
        self._expected = (
            None if auth is None else b"Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode())
        )
        self.host = host
        self._server = RawServer(self._handle, host=host, ssl_context=ssl_context, timeout=_RELAY_TIMEOUT)
        self.scheme = "https" if ssl_context is not None else "http"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return format_url(self.scheme, self.host, self.port)

    def start(self) -> ProxyServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _handle(self, conn: RawConnection) -> None:
        self.connections += 1
        while True:
            head = conn.read_head(timeout=_RELAY_TIMEOUT)
            if head is None:
                return
            self.heads.append(head)
            body = conn.read_body(head)
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            headers = [line.partition(b":") for line in lines[1:] if line]
            given = [
                value.strip() for name, _, value in headers if name.strip().lower() == b"proxy-authorization"
            ]
            if self._expected is not None and given != [self._expected]:
                message = b"proxy authentication required"
                conn.send(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\n'
                    b"Content-Length: %d\r\n\r\n%s" % (len(message), message)
                )
                continue
            if method == b"CONNECT":
                host, _, port = target.decode().rpartition(":")
                try:
                    upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5.0)
                except OSError:
                    conn.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    continue
                conn.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if self.buffer_size is not None:
                    for sock in (conn.sock, upstream):
                        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                            sock.setsockopt(socket.SOL_SOCKET, option, self.buffer_size)
                self._relay(conn, upstream)
                return
            self._forward(conn, method, target, headers, body)

    def _forward(
        self,
        conn: RawConnection,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes, bytes]],
        body: bytes,
    ) -> None:
        url = urlsplit(target.decode())
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [
            name + b":" + value
            for name, _, value in headers
            if name.strip().lower() not in (b"proxy-authorization", b"proxy-connection", b"connection")
        ]
        request = b"\r\n".join([b"%s %s HTTP/1.1" % (method, path.encode()), *kept, b"Connection: close"])
        with socket.create_connection((url.hostname or "", url.port or 80), timeout=5.0) as upstream:
            upstream.sendall(request + b"\r\n\r\n" + body)
            answer = bytearray()
            while data := upstream.recv(65536):
                answer += data
        head, _, rest = bytes(answer).partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        conn.send(b"\r\n".join(lines) + b"\r\n\r\n" + rest)

    def _relay(self, conn: RawConnection, upstream: socket.socket) -> None:
        client = conn.sock
        with upstream:
            while True:
                pending = isinstance(client, ssl.SSLSocket) and client.pending()
                if pending:
                    readable = [client]
                else:
                    readable, _, _ = select.select([client, upstream], [], [], _RELAY_TIMEOUT)
                if not readable:
                    return
                for sock in readable:
                    if sock is upstream:
                        data = upstream.recv(65536)
                        if not data:
                            return
                        conn.send(data)
                    else:
                        data = conn.recv(65536)
                        if not data:
                            return
                        upstream.sendall(data)


class PproxyHTTP:
    """pproxy (PyPI, the dev extra) as an HTTP proxy, or an HTTPS one with ``certs``
    (``(certfile, keyfile)``). Like its SOCKS mode, after one successful login it trusts
    the client's address, so wrong-credential tests need an instance of their own."""

    def __init__(self, *, certs: tuple[str, str] | None = None, auth: tuple[str, str] | None = None) -> None:
        self.certs = certs
        self.auth = auth
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.certs else 'http'}://localhost:{self.port}"

    def start(self) -> PproxyHTTP:
        with bind_listener("127.0.0.1") as probe:  # a free port, released for pproxy
            self.port = probe.getsockname()[1]
        listen = f"http{'+ssl' if self.certs else ''}://127.0.0.1:{self.port}"
        if self.auth is not None:
            listen += f"#{self.auth[0]}:{self.auth[1]}"
        command = [sys.executable, "-m", "pproxy", "-l", listen]
        if self.certs is not None:
            command += ["--ssl", ",".join(self.certs)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                return self
            except OSError:  # noqa: PERF203 - polled until it listens
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("pproxy did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:  # pragma: no cover
                process.kill()
                process.wait(5.0)
