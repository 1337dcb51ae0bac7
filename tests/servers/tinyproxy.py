"""Run a private tinyproxy (the Debian package) on loopback for the proxy tests.

Theory of operation: each ``TinyProxy`` writes its own configuration in a temporary
directory (a free port on 127.0.0.1, optional ``BasicAuth``, no Via header, CONNECT to
any port) and runs ``tinyproxy -d`` as a child process, stopped by ``stop()``. The
binary is installed by ``scripts/test_deps.py`` (``make test`` runs it); when it is
missing, ``start()`` fails with a message saying how to get it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .netutil import bind_listener

if TYPE_CHECKING:
    from typing import Self

__all__ = ["TinyProxy"]

_START_TIMEOUT = 10.0
_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])


def find_program(name: str) -> str | None:
    """A Debian program's path (some live in /usr/sbin, off a user's PATH)."""
    return shutil.which(name, path=_SBIN)


class TinyProxy:
    """tinyproxy on 127.0.0.1; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.host = "127.0.0.1"
        self.port = 0
        self._dir = tempfile.TemporaryDirectory(prefix="tinyproxy-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        binary = find_program("tinyproxy")
        if binary is None:
            raise RuntimeError(
                "tinyproxy is not installed: run 'python scripts/test_deps.py' as root "
                "(make test does) or 'apt-get install tinyproxy'"
            )
        with bind_listener(self.host) as probe:  # a free port, released for tinyproxy
            self.port = probe.getsockname()[1]
        directory = Path(self._dir.name)
        lines = [
            f"Port {self.port}",
            f"Listen {self.host}",
            "Timeout 60",
            "MaxClients 64",
            "LogLevel Error",
            f'LogFile "{directory / "tinyproxy.log"}"',
            f'PidFile "{directory / "tinyproxy.pid"}"',
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
        ]
        if self.auth is not None:
            lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
        config = directory / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        self._process = subprocess.Popen(
            [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1.0).close()
                return
            except OSError:  # noqa: PERF203 - polled until it listens
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tinyproxy did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        process = self._process
        if process is not None:
            self._process = None
            process.terminate()
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:  # pragma: no cover
                process.kill()
                process.wait(timeout=5.0)
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
