"""What a test leaves behind: sockets still open and asyncio errors nobody saw.

Theory of operation: ``LeakCheck.start()`` notes the socket descriptors the process
holds before a test (from ``/proc/self/fd``, keyed by inode so a reused descriptor
number is not mistaken for the same socket); ``LeakCheck.finish()`` collects garbage,
then lists the sockets opened since that are still open. Long-lived test servers keep
sockets across tests on purpose, so a socket is not counted when it belongs to one:

- its inode is registered with ``hold()`` (a threaded server's listener, from
  its start to its stop), or
- it was created in a thread that belongs to a server and is still running (a server
  thread's accepted connections, and the pool of an app it serves, such as the
  gateway's). An audit hook on ``socket.__new__`` records which thread created each
  socket object; the descriptor is read from the object when a leak is looked for.

A server that runs for one test only is stopped by then, so its sockets count.
Sockets the kernel has not finished closing are waited for briefly (another thread may
be closing them) before they are reported.

Errors an event loop reports to its exception handler (a task exception never
retrieved, an exception in a callback) are recorded from every loop but those of
running server threads. Unraisable exceptions, the ``ResourceWarning`` of an unclosed
socket or transport among them, are pytest's (``filterwarnings = error`` makes them
test errors); ``finish()`` collects the garbage so they are blamed on their test.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import typing
import weakref

__all__ = ["LeakCheck", "SERVER_THREAD_PREFIXES", "available", "hold", "install", "open_sockets", "release"]

# Threads whose sockets (and loop errors) belong to a server, not to the test.
SERVER_THREAD_PREFIXES = ("UvicornServer-", "HypercornServer-")
# How long sockets left by a test may take to close (another thread closing them).
SETTLE_TIMEOUT = 2.0
_PROC_FD = "/proc/self/fd"

_long_lived: set[int] = set()
_created: list[tuple[weakref.ref[typing.Any], threading.Thread]] = []
_created_lock = threading.Lock()
_loop_errors: list[tuple[str, dict[str, typing.Any]]] = []
_installed = False


def available() -> bool:
    return os.path.isdir(_PROC_FD)


def open_sockets() -> dict[int, int]:
    """Inode -> descriptor of every socket this process holds."""
    sockets: dict[int, int] = {}
    for name in os.listdir(_PROC_FD):
        try:
            target = os.readlink(f"{_PROC_FD}/{name}")
        except OSError:  # closed since the listing (or the listing's own descriptor)
            continue
        if target.startswith("socket:["):
            sockets[int(target[8:-1])] = int(name)
    return sockets


def inode_of(fd: int) -> int | None:
    try:
        target = os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return None
    return int(target[8:-1]) if target.startswith("socket:[") else None


def hold(fd: int) -> int | None:
    """The socket now on ``fd`` is a long-lived server's, never a leak, until
    ``release()`` is given the inode this returns."""
    inode = inode_of(fd)
    if inode is not None:
        _long_lived.add(inode)
    return inode


def release(inode: int | None) -> None:
    _long_lived.discard(inode or 0)


def _is_server_thread(thread: threading.Thread) -> bool:
    return thread.is_alive() and thread.name.startswith(SERVER_THREAD_PREFIXES)


def _audit(event: str, args: tuple[typing.Any, ...]) -> None:
    if event == "socket.__new__":
        with _created_lock:
            _created.append((weakref.ref(args[0]), threading.current_thread()))


def _record_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, typing.Any]) -> None:
    thread = threading.current_thread()
    if not _is_server_thread(thread):
        _loop_errors.append((thread.name, context))


def install() -> None:
    """Hook socket creation and the event loops' exception handler (once a process)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_audit)
    original = asyncio.BaseEventLoop.call_exception_handler

    def call_exception_handler(self: asyncio.BaseEventLoop, context: dict[str, typing.Any]) -> None:
        _record_loop_error(self, context)
        original(self, context)

    asyncio.BaseEventLoop.call_exception_handler = call_exception_handler  # type: ignore[method-assign]


def _server_owned() -> set[int]:
    """Descriptors of live sockets created by running server threads."""
    owned: set[int] = set()
    with _created_lock:
        alive = []
        for ref, thread in _created:
            sock = ref()
            if sock is None:
                continue
            alive.append((ref, thread))
            if _is_server_thread(thread):
                try:
                    fd = sock.fileno()
                except (OSError, ValueError):  # pragma: no cover - closed meanwhile
                    continue
                if fd >= 0:
                    owned.add(fd)
        _created[:] = alive
    return owned


def _describe(inode: int, fd: int) -> str:
    """``fd 12: tcp 127.0.0.1:40000 -> 127.0.0.1:8000 (ESTABLISHED)`` or as near as /proc says."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as table:
                lines = table.readlines()[1:]
        except OSError:  # pragma: no cover
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] == str(inode):
                state = _TCP_STATES.get(fields[3], fields[3])
                return f"fd {fd}: tcp {_address(fields[1])} -> {_address(fields[2])} ({state})"
    return f"fd {fd}: socket inode {inode} (not TCP: a Unix socket or socket pair)"


_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def _address(field: str) -> str:
    host, _, port = field.partition(":")
    if len(host) == 8:
        octets = bytes.fromhex(host)[::-1]
        return f"{'.'.join(str(o) for o in octets)}:{int(port, 16)}"
    return f"[{host}]:{int(port, 16)}"


class LeakCheck:
    """Sockets and loop errors a test leaves behind (see the module docstring)."""

    def __init__(self, settle: float = SETTLE_TIMEOUT) -> None:
        self._settle = settle
        self._before: set[int] = set()
        self._errors_before = 0

    def start(self) -> None:
        self._before = set(open_sockets())
        self._errors_before = len(_loop_errors)

    def leaked_sockets(self) -> list[str]:
        """The sockets opened since ``start()`` that are still open and are nobody's."""
        deadline = time.monotonic() + self._settle
        while True:
            gc.collect()
            owned = _server_owned()
            leaked = {
                inode: fd
                for inode, fd in open_sockets().items()
                if inode not in self._before and inode not in _long_lived and fd not in owned
            }
            if not leaked or time.monotonic() > deadline:
                return [_describe(inode, fd) for inode, fd in sorted(leaked.items())]
            time.sleep(0.02)

    def loop_errors(self) -> list[str]:
        errors = _loop_errors[self._errors_before :]
        del _loop_errors[self._errors_before :]
        return [
            f"[{thread}] {context.get('message')}: {context.get('exception')!r}" for thread, context in errors
        ]

    def finish(self) -> list[str]:
        """Everything left behind, one line each; empty when the test was clean."""
        problems = [f"socket left open: {line}" for line in self.leaked_sockets()]
        problems += [f"event loop error: {line}" for line in self.loop_errors()]
        return problems
