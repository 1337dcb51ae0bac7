"""A SOCKS5 server of our own for the tests: a real relay, and every fault on demand.

Theory of operation: ``SOCKSScript`` is a ``RawServer`` handler. Each accepted connection
goes through the SOCKS5 server side step by step (greeting, RFC 1929 credentials when
``auth`` is set, CONNECT request), recording what the client asked for in ``requests``
(address type, host, port) so tests can tell socks5 (an IP is sent) from socks5h (the
name is). Then, unless a fault says otherwise, it connects to the target itself and
relays bytes both ways until either side closes, so TLS and HTTP/2 origins work through
it. Faults: ``stall`` at a named step (saying nothing, or half an answer, then waiting
until the server stops), ``reply_code`` (a refusal), ``raw_answer`` (bytes sent instead
of the method choice), ``bound`` (the address type of the success reply), ``trickle``
(the reply one byte at a time), ``refuse_hosts`` (addresses refused).

Real SOCKS5 servers run as child processes on a free loopback port: ``MicrosocksServer``
(the Debian package, which ``scripts/test_deps.py`` installs) and ``PproxyServer``
(pproxy from PyPI, in the dev extra).
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from .netutil import bind_listener
from .raw import RawConnection

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "STALL_STEPS",
    "MicrosocksServer",
    "PproxyServer",
    "SOCKSRequest",
    "SOCKSScript",
    "UnixForwarder",
    "find_microsocks",
]

Step = Literal["accept", "greeting", "method", "auth", "request", "reply"]
# "accept": never reads; "greeting": reads the greeting, answers nothing; "method": half
# the method choice; "auth": half the RFC 1929 status; "request": reads the CONNECT,
# answers nothing; "reply": the first bytes of the CONNECT reply.
STALL_STEPS: tuple[Step, ...] = ("accept", "greeting", "method", "auth", "request", "reply")
_STALL = 30.0  # longer than any test waits; the server's stop ends it
_RELAY_IDLE = 30.0
_BOUND = {
    "ipv4": b"\x01\x7f\x00\x00\x01",
    "ipv6": b"\x04" + ipaddress.IPv6Address("::1").packed,
    "domain": b"\x03\x09localhost",
}


@dataclass(frozen=True)
class SOCKSRequest:
    atyp: int  # 1 IPv4, 3 domain name, 4 IPv6
    host: str
    port: int


@dataclass
class SOCKSScript:
    """The behaviour of a scripted SOCKS5 server (a ``RawServer`` handler)."""

    auth: tuple[bytes, bytes] | None = None
    stall: Step | None = None
    reply_code: int = 0
    raw_answer: bytes | None = None
    bound: Literal["ipv4", "ipv6", "domain"] = "ipv4"
    trickle: float = 0.0  # > 0: the success reply one byte at a time, this many seconds apart
    refuse_hosts: frozenset[str] = frozenset()  # answered "connection refused" (0x05)
    requests: list[SOCKSRequest] = field(default_factory=list)
    greetings: list[bytes] = field(default_factory=list)
    credentials: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __call__(self, conn: RawConnection) -> None:
        if self.stall == "accept":
            conn.sleep(_STALL)
            return
        head = _read_exact(conn, 2)
        greeting = head + _read_exact(conn, head[1])
        self.greetings.append(greeting)
        if self.raw_answer is not None:
            conn.send(self.raw_answer)
            conn.sleep(_STALL)
            return
        if self.stall == "greeting":
            conn.sleep(_STALL)
            return
        method = 0x02 if self.auth is not None else 0x00
        if method not in greeting[2:]:
            conn.send(b"\x05\xff")
            return
        if self.stall == "method":
            conn.send(b"\x05")
            conn.sleep(_STALL)
            return
        conn.send(bytes((0x05, method)))
        if self.auth is not None and not self._check_auth(conn):
            return
        target = self._read_request(conn)
        if self.stall == "request":
            conn.sleep(_STALL)
            return
        code = 0x05 if target.host in self.refuse_hosts else self.reply_code
        if code:
            conn.send(bytes((0x05, code, 0x00)) + _BOUND["ipv4"] + b"\x00\x00")
            return
        reply = b"\x05\x00\x00" + _BOUND[self.bound] + b"\x04\x38"
        if self.stall == "reply":
            conn.send(reply[:6])
            conn.sleep(_STALL)
            return
        upstream = socket.create_connection((target.host, target.port), timeout=5.0)
        try:
            if self.trickle:
                conn.send_slowly(reply, delay=self.trickle)
            else:
                conn.send(reply)
            _relay(conn.sock, upstream)
        finally:
            upstream.close()

    def _check_auth(self, conn: RawConnection) -> bool:
        head = _read_exact(conn, 2)
        username = _read_exact(conn, head[1])
        password = _read_exact(conn, _read_exact(conn, 1)[0])
        self.credentials.append((username, password))
        if self.stall == "auth":
            conn.send(b"\x01")
            conn.sleep(_STALL)
            return False
        if (username, password) != self.auth:
            conn.send(b"\x01\x01")
            return False
        conn.send(b"\x01\x00")
        return True

    def _read_request(self, conn: RawConnection) -> SOCKSRequest:
        head = _read_exact(conn, 4)
        atyp = head[3]
        if atyp == 0x03:
            host = _read_exact(conn, _read_exact(conn, 1)[0]).decode("ascii")
        else:
            host = str(ipaddress.ip_address(_read_exact(conn, 4 if atyp == 0x01 else 16)))
        port = int.from_bytes(_read_exact(conn, 2), "big")
        request = SOCKSRequest(atyp, host, port)
        self.requests.append(request)
        return request


def _read_exact(conn: RawConnection, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("socks server: the client closed mid-handshake")
        data += chunk
    return data


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until one side closes (or nothing moves for a while)."""
    pair = {client: upstream, upstream: client}
    client.setblocking(True)
    upstream.setblocking(True)
    with selectors.DefaultSelector() as selector:
        for sock in pair:
            selector.register(sock, selectors.EVENT_READ)
        while True:
            ready = selector.select(_RELAY_IDLE)
            if not ready:
                return
            for key, _ in ready:
                source = key.fileobj
                assert isinstance(source, socket.socket)
                data = source.recv(65536)
                if not data:
                    return
                pair[source].sendall(data)


def find_microsocks() -> str | None:
    """The microsocks binary (Debian installs it in /usr/bin), or None."""
    found = shutil.which("microsocks")
    if found is None and os.access("/usr/bin/microsocks", os.X_OK):
        found = "/usr/bin/microsocks"
    return found


class UnixForwarder:
    """A Unix socket at ``path`` whose every connection is relayed to TCP ``port`` on
    127.0.0.1: a proxy reached over ``uds=``."""

    def __init__(self, path: str, port: int) -> None:
        self.path = path
        self.port = port
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        self._listener.bind(self.path)
        self._listener.listen(8)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5.0)
            self._sockets += [client, upstream]
            thread = threading.Thread(target=_relay, args=(client, upstream), daemon=True)
            thread.start()
            self._threads.append(thread)

    def __exit__(self, *exc_info: object) -> None:
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5.0)
        for sock in self._sockets:
            sock.close()


class _ChildProxy:
    """A SOCKS5 server program run as a child process on a free loopback port."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.host = "127.0.0.1"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"socks5://{self.host}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with bind_listener(self.host) as probe:  # a free port, released for the child
            self.port = probe.getsockname()[1]
        self._process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        name = type(self).__name__
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{name} exited at once (code {self._process.returncode})")
            try:
                socket.create_connection((self.host, self.port), timeout=1.0).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{name} did not start listening within 10 seconds")

    def stop(self) -> None:
        process = self._process
        if process is not None:
            self._process = None
            process.terminate()
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class MicrosocksServer(_ChildProxy):
    """The real ``microsocks`` (Debian package), optionally asking for a user and password."""

    def command(self) -> list[str]:
        binary = find_microsocks()
        if binary is None:
            raise RuntimeError(
                "microsocks is not installed: run 'python scripts/test_deps.py' as root "
                "(make test does) or 'apt-get install microsocks'"
            )
        command = [binary, "-i", self.host, "-p", str(self.port)]
        if self.auth is not None:
            command += ["-u", self.auth[0], "-P", self.auth[1]]
        return command


class PproxyServer(_ChildProxy):
    """pproxy (PyPI, the dev extra) serving SOCKS5. Note: after one successful login it
    trusts the client's IP address for a long time, so wrong-credential tests need an
    instance of their own."""

    def command(self) -> list[str]:
        listen = f"socks5://{self.host}:{self.port}"
        if self.auth is not None:
            listen += f"#{self.auth[0]}:{self.auth[1]}"
        return [sys.executable, "-m", "pproxy", "-l", listen]
