"""Floor for h11-based clients: blocking socket + h11, nothing else.

Per request: build an h11.Request, send (body via send_with_data_passthrough, so no
16 MiB copy), pull events until EndOfMessage, start_next_cycle.  recv size 64 KiB.
One connection per thread stands in for the pool.  Any h11-based client (ours,
encode's httpcore) pays at least this; the gap above it is the client's own code.
Lives in bench/.venv-peers (needs h11).
"""

from __future__ import annotations

import socket
import ssl
import threading
from urllib.parse import urlsplit

import _common
import h11

READ = 64 * 1024


class Conn:
    def __init__(self, url: str, ctx: ssl.SSLContext | None = None) -> None:
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = ctx.wrap_socket(sock, server_hostname=host) if ctx else sock
        self.host = f"{host}:{port}".encode()
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def roundtrip(self, method: bytes, target: bytes, body: bytes | None = None) -> tuple[int, int]:
        conn, sock = self.h11, self.sock
        headers = [(b"Host", self.host)]
        if body is not None:
            headers.append((b"Content-Length", b"%d" % len(body)))
        sock.sendall(conn.send(h11.Request(method=method, target=target, headers=headers)))
        if body is not None:
            for piece in conn.send_with_data_passthrough(h11.Data(data=body)) or ():
                sock.sendall(piece)
        sock.sendall(conn.send(h11.EndOfMessage()) or b"")
        status, n = 0, 0
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(sock.recv(READ))
            elif isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                n += len(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                break
            elif isinstance(ev, h11.ConnectionClosed):
                raise ConnectionError("server closed the connection")
        conn.start_next_cycle()
        return status, n

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
        return self._conn(url).roundtrip(b"GET", b"/")

    def download(self, url: str) -> tuple[int, int]:
        return self._conn(url).roundtrip(b"GET", b"/16m")

    def upload(self, url: str, body: bytes) -> tuple[int, int]:
        return self._conn(url).roundtrip(b"POST", b"/sink", body)

    def close(self) -> None:
        for c in self.all:
            c.close()

    @staticmethod
    def tls_get(url: str, ca: str) -> tuple[int, int]:
        c = Conn(url, ssl.create_default_context(cafile=ca))
        try:
            return c.roundtrip(b"GET", b"/")
        finally:
            c.close()


if __name__ == "__main__":
    _common.main(Sync, None)
