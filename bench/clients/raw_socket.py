"""Floor: a hand-written blocking-socket HTTP/1.1 client.

Hard-coded request bytes, minimal response parsing (status code and nginx's exact
`Content-Length: ` header only, no chunked, no header dict), recv_into a reused
256 KiB buffer.  One socket per thread (thread-local) stands in for the pool.  No
real client can do less per request in Python; the gap between a client and this
floor is that client's own overhead.  Runs under any interpreter (stdlib only).
"""

from __future__ import annotations

import socket
import ssl
import threading
from urllib.parse import urlsplit

import _common

READ = 256 * 1024


class Conn:
    def __init__(self, url: str, ctx: ssl.SSLContext | None = None) -> None:
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = ctx.wrap_socket(sock, server_hostname=host) if ctx else sock
        self.host = f"{host}:{port}".encode()
        self.buf = bytearray()
        self.rbuf = bytearray(READ)
        self.view = memoryview(self.rbuf)

    def roundtrip(self, head: bytes, body: bytes | None = None) -> tuple[int, int]:
        s, buf, view = self.sock, self.buf, self.view
        s.sendall(head)
        if body is not None:
            s.sendall(body)
        while (i := buf.find(b"\r\n\r\n")) < 0:
            n = s.recv_into(view)
            if not n:
                raise ConnectionError("server closed the connection")
            buf += view[:n]
        status = int(buf[9:12])
        j = buf.find(b"Content-Length: ", 0, i) + 16
        length = int(buf[j : buf.find(b"\r\n", j)])
        have = len(buf) - i - 4
        if have >= length:
            del buf[: i + 4 + length]
            return status, length
        del buf[:]
        left = length - have
        while left > 0:
            n = s.recv_into(view, min(left, READ))
            if not n:
                raise ConnectionError("server closed the connection")
            left -= n
        return status, length

    def close(self) -> None:
        self.sock.close()


class Sync:
    def __init__(self, connections: int) -> None:
        self.local = threading.local()
        self.all: list[Conn] = []
        self.lock = threading.Lock()

    def _conn(self, url: str) -> Conn:
        c: Conn | None = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = Conn(url)
            with self.lock:
                self.all.append(c)
        return c

    def get(self, url: str) -> tuple[int, int]:
        c = self._conn(url)
        return c.roundtrip(b"GET / HTTP/1.1\r\nHost: " + c.host + b"\r\n\r\n")

    def download(self, url: str) -> tuple[int, int]:
        c = self._conn(url)
        return c.roundtrip(b"GET /16m HTTP/1.1\r\nHost: " + c.host + b"\r\n\r\n")

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        c = self._conn(url)
        head = b"POST /sink HTTP/1.1\r\nHost: " + c.host + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        return c.roundtrip(head, body)

    def close(self) -> None:
        for c in self.all:
            c.close()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        c = Conn(url, ssl.create_default_context(cafile=ca))
        try:
            return c.roundtrip(b"GET / HTTP/1.1\r\nHost: " + c.host + b"\r\n\r\n")
        finally:
            c.close()


if __name__ == "__main__":
    _common.main(Sync, None)
