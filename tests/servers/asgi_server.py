"""Run real ASGI servers (uvicorn, hypercorn) in background threads.

Theory of operation: each server object binds its own listening socket on
port 0 *before* the server starts, so the ephemeral port is known up front
and clients can never race the bind (connections simply queue in the backlog
until the server's event loop accepts them).  The server then runs in a
daemon thread with a private asyncio event loop:

* uvicorn: the socket goes in through ``uvicorn.Server.run(sockets=[sock])``;
  a subclass sets a ``threading.Event`` once ``startup()`` has finished, and
  ``should_exit`` (then ``force_exit``) stops it.
* hypercorn: the socket is handed over as ``config.bind = ["fd://N"]`` (the
  documented way to serve an inherited descriptor; hypercorn wraps the fd in
  its own socket object and closes it at shutdown, so we ``detach()`` ours
  to keep exactly one owner).  ``serve()`` only awaits ``shutdown_trigger``
  after every listener is serving, so our trigger doubles as the readiness
  signal; ``stop()`` sets the asyncio event it waits on.

Both are context managers; ``start()`` waits until the server is up (or
raises), ``stop()`` is idempotent and bounded in time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, cast

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import Framework

from .. import leaks
from .app import ASGIApp
from .app import app as default_app
from .netutil import bind_listener, format_url

if TYPE_CHECKING:
    from typing import Self  # 3.11+, but only ever imported by type checkers

__all__ = ["HypercornServer", "UvicornServer"]

StrPath = str | PathLike[str]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class _ThreadedServer:
    """Shared bookkeeping: socket, thread, readiness, URL, context manager."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        certfile: StrPath | None,
        keyfile: StrPath | None,
    ) -> None:
        if (certfile is None) != (keyfile is None):
            raise ValueError("certfile and keyfile go together")
        self.app = app
        self.host = host
        self.certfile = certfile
        self.keyfile = keyfile
        self.port = 0
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._held: int | None = None  # the listener's inode, for the leak check

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("server not started")
        return format_url("https" if self.tls else "http", self.host, self.port)

    def _run(self, sock: socket.socket) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _started(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _signal_stop(self, *, force: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _thread_main(self, sock: socket.socket) -> None:
        try:
            self._run(sock)
        except BaseException as exc:  # noqa: BLE001 - reported by start(), never raised in the thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        sock = bind_listener(self.host)
        self.port = sock.getsockname()[1]
        self._held = leaks.hold(sock.fileno())
        name = f"{type(self).__name__}-{self.port}"
        self._thread = threading.Thread(target=self._thread_main, args=(sock,), name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or not self._started():
            self.stop()
            raise RuntimeError(f"{name} failed to start") from self._error

    def stop(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            leaks.release(self._held)
            return
        self._signal_stop(force=False)
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            self._signal_stop(force=True)
            thread.join(_STOP_TIMEOUT)
        leaks.release(self._held)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url if self.port else 'stopped'}>"


class _NotifyingUvicorn(uvicorn.Server):
    """uvicorn.Server that reports the end of startup to another thread."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready_event = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready_event.set()


class UvicornServer(_ThreadedServer):
    """uvicorn (h11, HTTP/1.1 only) serving ``app`` in a background thread."""

    def __init__(
        self,
        app: ASGIApp = default_app,
        *,
        host: str = "127.0.0.1",
        certfile: StrPath | None = None,
        keyfile: StrPath | None = None,
    ) -> None:
        super().__init__(app, host, certfile, keyfile)
        config = uvicorn.Config(
            app=app,
            host=host,
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,  # never reconfigure the test process' logging
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self.server = _NotifyingUvicorn(config, self._ready)

    def _run(self, sock: socket.socket) -> None:
        try:
            self.server.run(sockets=[sock])
        finally:
            sock.close()

    def _started(self) -> bool:
        return self.server.started

    def _signal_stop(self, *, force: bool) -> None:
        self.server.should_exit = True
        if force:
            self.server.force_exit = True


class HypercornServer(_ThreadedServer):
    """hypercorn serving ``app`` in a background thread.

    With a certificate: TLS, ALPN ``h2`` and ``http/1.1``.  Without: plain TCP
    speaking HTTP/1.1, h2c upgrade and HTTP/2 with prior knowledge.
    """

    def __init__(
        self,
        app: ASGIApp = default_app,
        *,
        host: str = "127.0.0.1",
        certfile: StrPath | None = None,
        keyfile: StrPath | None = None,
        alpn_protocols: list[str] | None = None,
    ) -> None:
        super().__init__(app, host, certfile, keyfile)
        self.config = HypercornConfig()
        self.config.loglevel = "WARNING"
        self.config.accesslog = None
        self.config.graceful_timeout = 1.0
        if certfile is not None and keyfile is not None:
            self.config.certfile = str(certfile)
            self.config.keyfile = str(keyfile)
            self.config.alpn_protocols = alpn_protocols or ["h2", "http/1.1"]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._serving = False

    def _run(self, sock: socket.socket) -> None:
        # hypercorn re-wraps the descriptor and owns it from here on.
        self.config.bind = [f"fd://{sock.detach()}"]
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        shutdown = self._shutdown

        async def shutdown_trigger() -> None:
            # Awaited by hypercorn only once all listeners are serving.
            self._serving = True
            self._ready.set()
            await shutdown.wait()

        await hypercorn_serve(cast(Framework, self.app), self.config, shutdown_trigger=shutdown_trigger)

    def _started(self) -> bool:
        return self._serving

    def _signal_stop(self, *, force: bool) -> None:
        loop, event = self._loop, self._shutdown
        if loop is None or event is None:
            return

        def trigger() -> None:
            event.set()
            if force:  # graceful shutdown is stuck: cancel everything
                for task in asyncio.all_tasks(loop):
                    task.cancel()

        try:
            loop.call_soon_threadsafe(trigger)
        except RuntimeError:  # loop already closed
            pass
