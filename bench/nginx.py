"""Run a private nginx for the benchmarks: install it if missing, configure it, start and stop it.

Why nginx: the server must be much cheaper per request than any Python client, so
that what we measure is the client.  One worker pinned to CPU 0 (the clients run on
CPU 1), no access log, unlimited keep-alive.  Everything (config, TLS cert and key,
static files, temp dirs, pid, error log) lives in a throw-away prefix directory and
nginx runs as our child process (`daemon off;`), so nothing system-wide is touched
besides `apt-get install nginx` when the binary is missing.

Routes (HTTP and HTTPS listeners serve the same):
  GET  /      -> 200, b"Hello world!" (12 bytes)
  GET  /1k, /64k, /1m, /16m -> static files of 1 KiB, 64 KiB, 1 MiB, 16 MiB
  POST /sink  -> reads the whole request body (any size), discards it, 200 b"ok"
A third listener (h2_url) speaks HTTP/2 over TLS (ALPN h2, 128 concurrent streams,
no per-connection request limit) and serves only GET / (the same 12 bytes).

/sink: `return 200` alone makes nginx answer *before* the body is read and then
discard the body in the background, so a client may see the response while it is
still uploading (and some clients then refuse to reuse the connection).  Instead
/sink is proxied with `proxy_request_buffering on` and `proxy_pass_request_body off`
to a tiny unix-socket server block: the proxy module reads the complete body first
(buffered in memory up to `client_body_buffer_size`, then in a temp file), and only
then answers, without forwarding the body.  `python bench/nginx.py --selftest`
checks this with a raw socket.

Can be used standalone: `python bench/nginx.py --serve` prints the URLs and serves
until Ctrl-C (needs trustme importable, see `certs_python` in run.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELLO = b"Hello world!"
STATIC_FILES = {"1k": 1024, "64k": 64 * 1024, "1m": 1024 * 1024, "16m": 16 * 1024 * 1024}

CONF_TEMPLATE = (HERE / "nginx" / "nginx.conf.in").read_text()


def find_nginx() -> str | None:
    """Return the nginx binary path, or None (Debian puts it in /usr/sbin)."""
    found = shutil.which("nginx")
    if found:
        return found
    for cand in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(cand, os.X_OK):
            return cand
    return None


def ensure_nginx(quiet: bool = True) -> str:
    """Return the nginx binary, installing Debian's `nginx` package first if it is missing.

    Idempotent and quiet: nothing happens when nginx is already there.  Installing
    needs root (CI runs as root).  The package's postinst tries to start the system
    service; we never use it (our nginx has its own prefix and ports).
    """
    path = find_nginx()
    if path:
        return path
    if os.geteuid() != 0:
        raise RuntimeError("nginx is not installed and we are not root: apt-get install nginx")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    out = subprocess.DEVNULL if quiet else None
    print("bench: installing nginx from Debian packages ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=out, stderr=out, check=False)
    for pkg in ("nginx", "nginx-light"):
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg],
            env=env,
            stdout=out,
            stderr=out,
            check=False,
        )
        path = find_nginx()
        if proc.returncode == 0 and path:
            return path
    raise RuntimeError("could not install nginx with apt-get")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certs(directory: Path, python: str) -> tuple[Path, Path, Path]:
    """Make a CA and a server cert for 127.0.0.1/localhost with trustme (in `python`).

    Returns (ca.pem, server-cert-chain.pem, server-key.pem).  trustme runs in a
    subprocess because the orchestrator's interpreter need not have it.
    """
    script = (
        "import sys, trustme\n"
        "d = sys.argv[1]\n"
        "ca = trustme.CA()\n"
        "cert = ca.issue_cert('127.0.0.1', 'localhost')\n"
        "ca.cert_pem.write_to_path(d + '/ca.pem')\n"
        "cert.private_key_pem.write_to_path(d + '/server.key')\n"
        "cert.private_key_and_cert_chain_pem.write_to_path(d + '/server-full.pem')\n"
        "open(d + '/server.pem', 'wb').write(b''.join(b.bytes() for b in cert.cert_chain_pems))\n"
    )
    subprocess.run([python, "-c", script, str(directory)], check=True)
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@dataclass
class Nginx:
    """A private nginx instance; use as a context manager or call start()/stop()."""

    certs_python: str = sys.executable
    cpu: int | None = 0  # CPU to pin the master+worker to (None: no pinning)
    prefix: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-nginx-")))
    http_port: int = 0
    https_port: int = 0
    h2_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    binary: str = ""

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def h2_url(self) -> str:
        return f"https://127.0.0.1:{self.h2_port}"

    @property
    def ca_path(self) -> Path:
        return self.prefix / "ca.pem"

    def write_files(self) -> Path:
        p = self.prefix
        # When started as root the worker runs as `nobody`: it must be able to read the
        # static files and write the request-body temp files.
        p.chmod(0o755)
        www = p / "www"
        www.mkdir(parents=True, exist_ok=True)
        for name, size in STATIC_FILES.items():
            path = www / name
            if not path.exists() or path.stat().st_size != size:
                # Deterministic but not all-zero content.
                block = bytes(range(256)) * 4096  # 1 MiB
                with open(path, "wb") as f:
                    left = size
                    while left:
                        n = min(left, len(block))
                        f.write(block[:n])
                        left -= n
            path.chmod(0o644)
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (p / d).mkdir(exist_ok=True)
            (p / d).chmod(0o777)
        _, cert, key = make_certs(p, self.certs_python)
        self.http_port = self.http_port or free_port()
        self.https_port = self.https_port or free_port()
        self.h2_port = self.h2_port or free_port()
        affinity = "" if self.cpu is None else "worker_cpu_affinity " + _mask(self.cpu) + ";"
        conf = CONF_TEMPLATE.format(
            prefix=p,
            www=www,
            cert=cert,
            key=key,
            affinity=affinity,
            http_port=self.http_port,
            https_port=self.https_port,
            h2_port=self.h2_port,
            sink_sock=p / "sink.sock",
        )
        conf_path = p / "nginx.conf"
        conf_path.write_text(conf)
        return conf_path

    def start(self) -> Nginx:
        self.binary = ensure_nginx()
        conf = self.write_files()
        cmd = [self.binary, "-c", str(conf), "-p", str(self.prefix), "-g", "daemon off;"]
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        # `-t` first so a config error gives a readable message.
        subprocess.run([self.binary, "-t", "-q", "-c", str(conf), "-p", str(self.prefix)], check=True)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.prefix / "logs" / "error.log"
                raise RuntimeError("nginx exited: " + (log.read_text() if log.exists() else "?"))
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", self.h2_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown of master + worker
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.prefix, ignore_errors=True)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(x) for x in children.split()]

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the orchestrator dies, so nginx never outlives it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort (non-Linux)
        pass


def _mask(cpu: int) -> str:
    return format(1 << cpu, "b")


# ---------------------------------------------------------------- self-test


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    body = bytearray(rest)
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        body += data
    buf[:] = body[length:]
    return status, bytes(body[:length])


def selftest(ng: Nginx) -> None:
    """Check routes, and that /sink answers only after the whole 16 MiB body was read."""
    size = 16 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", ng.http_port)) as s:
        buf = bytearray()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s, buf) == (200, HELLO)
        for name, n in STATIC_FILES.items():
            s.sendall(f"GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            st, body = _read_response(s, buf)
            assert st == 200 and len(body) == n, (name, st, len(body))
        # Send headers + all but the last byte, then check that no response came early.
        s.sendall(f"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
        s.sendall(b"x" * (size - 1))
        s.settimeout(0.5)
        try:
            early = s.recv(1)
        except TimeoutError:
            early = b""
        assert early == b"", "nginx answered /sink before the body was complete"
        s.settimeout(10)
        s.sendall(b"x")
        t0 = time.perf_counter()
        assert _read_response(s, buf) == (200, b"ok")
        # Same connection still usable => the body was consumed, framing is intact.
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s, buf) == (200, HELLO)
        print(
            f"selftest: /sink waits for the full body; answered {1e3 * (time.perf_counter() - t0):.1f} ms"
            " after the last byte; keep-alive intact",
            file=sys.stderr,
        )
        # Chunked upload too (clients streaming an iterable body use it).
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(16):
            s.sendall(b"100000\r\n" + b"y" * 0x100000 + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        assert _read_response(s, buf) == (200, b"ok")
    # The HTTP/2 listener negotiates h2 by ALPN with our CA (the frames are the clients' job).
    ctx = ssl.create_default_context(cafile=str(ng.ca_path))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", ng.h2_port)) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
    print("selftest: ok", file=sys.stderr)


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--certs-python", default=sys.executable)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill too
    with Nginx(certs_python=args.certs_python, cpu=0 if (os.cpu_count() or 1) > 1 else None) as ng:
        print(ng.http_url, ng.https_url, ng.h2_url, ng.ca_path, flush=True)
        if args.selftest:
            selftest(ng)
        if args.serve:
            try:
                ng.proc.wait()  # type: ignore[union-attr]
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
