"""Shared pytest fixtures: loopback servers and TLS material.

Theory of operation: the real servers (uvicorn for HTTP/1.1, hypercorn for
HTTP/2) run in background threads and are stateless, so each is started once
per session, lazily, on first use, and stopped at the end of the session.
Raw fault-injection servers carry per-test state (handler, recorded requests),
so ``raw_server`` is a function-scoped factory whose servers are stopped when
the test ends.  SSL contexts are mutable, so tests get fresh ones.

Every test runs under ``no_leaks`` (autouse): it fails a test that leaves a socket
open or an asyncio error unreported (see ``tests/leaks.py``); unraisable exceptions,
unclosed-resource warnings among them, are errors through ``filterwarnings``.

Because servers run in threads, plain synchronous fixtures serve both sync
and async tests; no event-loop fixture is involved.

The async tests run under asyncio and under trio: every coroutine test in
``tests/_async/`` is parametrized by ``async_library`` (``[asyncio]`` and ``[trio]``
in its id), and a test marked ``trio`` runs under trio only. pytest-asyncio runs the
asyncio ones; each trio one is swapped at collection for a plain test that runs the
coroutine with ``trio.run`` (so pytest-asyncio never sees it). A test that needs to know
which library runs it asks for the ``async_library`` fixture.
"""

from __future__ import annotations

import functools
import gc
import inspect
import ssl
import typing
from collections.abc import Callable, Iterator

import pytest
import trustme

from tests import leaks
from tests.servers import tls
from tests.servers.asgi_server import HypercornServer, UvicornServer
from tests.servers.netutil import has_ipv6_loopback
from tests.servers.raw import Handler, RawServer, RawServerFactory
from tests.servers.socks import MicrosocksServer, PproxyServer
from tests.servers.tinyproxy import TinyProxy

leaks.install()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The leak check collects garbage after every test: leave out of it what was
    made before the first (modules, their tables), which only a full scan would visit."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a socket open or an event-loop error behind."""
    if not leaks.available():  # pragma: no cover - no /proc: nothing to count with
        yield
        return
    check = leaks.LeakCheck()
    check.start()
    yield
    problems = check.finish()
    if problems:
        pytest.fail("the test left behind:\n  " + "\n  ".join(problems), pytrace=False)


ASYNC_LIBRARIES = ("asyncio", "trio")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "trio: an async test that runs under trio only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not inspect.iscoroutinefunction(metafunc.function):
        return
    if metafunc.definition.get_closest_marker("trio") is not None:
        libraries: tuple[str, ...] = ("trio",)
    elif "_async" in metafunc.definition.path.parts:
        libraries = ASYNC_LIBRARIES
    else:
        return
    if "async_library" not in metafunc.fixturenames:
        metafunc.fixturenames.append("async_library")
    metafunc.parametrize("async_library", libraries)


@pytest.fixture
def async_library(request: pytest.FixtureRequest) -> str:
    """The async library running the test: "asyncio" or "trio"."""
    return typing.cast(str, getattr(request, "param", "asyncio"))


def _under_trio(function: Callable[..., typing.Any]) -> Callable[..., None]:
    @functools.wraps(function)
    def run(**kwargs: typing.Any) -> None:
        import trio

        trio.run(functools.partial(function, **kwargs))

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for index, item in enumerate(items):
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("async_library") != "trio":
            continue
        assert isinstance(item, pytest.Function)
        items[index] = pytest.Function.from_parent(
            item.parent,
            name=item.name,
            callspec=callspec,
            callobj=_under_trio(item.obj),
            fixtureinfo=item._fixtureinfo,
            originalname=item.originalname,
        )


@pytest.fixture(scope="session")
def cert_authority() -> trustme.CA:
    """The session's test CA (trusted by ``client_ssl_context``)."""
    return tls.get_ca()


@pytest.fixture(scope="session")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tls.CertFiles:
    """PEM files of the server certificate, key and CA certificate."""
    return tls.write_cert_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def client_ssl_context() -> ssl.SSLContext:
    """A fresh client context trusting only the test CA; no ALPN set."""
    return tls.client_ssl_context()


@pytest.fixture
def server_ssl_context() -> ssl.SSLContext:
    """A fresh server context with the test certificate; no ALPN set."""
    return tls.server_ssl_context()


@pytest.fixture(scope="session")
def server() -> Iterator[UvicornServer]:
    """uvicorn, plain HTTP/1.1 on 127.0.0.1."""
    with UvicornServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def server_ipv6() -> Iterator[UvicornServer]:
    """uvicorn, plain HTTP/1.1 on ::1 (skipped without IPv6 loopback)."""
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    with UvicornServer(host="::1") as srv:
        yield srv


@pytest.fixture(scope="session")
def tls_server(cert_files: tls.CertFiles) -> Iterator[UvicornServer]:
    """uvicorn, HTTPS (HTTP/1.1 only) on 127.0.0.1; cert valid for localhost too."""
    with UvicornServer(certfile=cert_files.certfile, keyfile=cert_files.keyfile) as srv:
        yield srv


@pytest.fixture(scope="session")
def h2_server(cert_files: tls.CertFiles) -> Iterator[HypercornServer]:
    """hypercorn, HTTPS with ALPN ``h2`` / ``http/1.1`` on 127.0.0.1."""
    with HypercornServer(certfile=cert_files.certfile, keyfile=cert_files.keyfile) as srv:
        yield srv


@pytest.fixture(scope="session")
def h2c_server() -> Iterator[HypercornServer]:
    """hypercorn, plain TCP: HTTP/1.1 or HTTP/2 with prior knowledge."""
    with HypercornServer() as srv:
        yield srv


@pytest.fixture
def raw_server() -> Iterator[RawServerFactory]:
    """Factory: ``raw_server(handler, host=..., ssl_context=..., timeout=...)``
    returns a started ``RawServer``; all are stopped at teardown."""
    servers: list[RawServer] = []

    def factory(
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
    ) -> RawServer:
        srv = RawServer(handler, host=host, ssl_context=ssl_context, timeout=timeout)
        srv.start()
        servers.append(srv)
        return srv

    yield factory
    for srv in reversed(servers):
        srv.stop()


PROXY_AUTH = ("proxyuser", "s3cr3t-pw")


@pytest.fixture(scope="session")
def tinyproxy() -> Iterator[TinyProxy]:
    """tinyproxy on 127.0.0.1, no authentication."""
    with TinyProxy() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def tinyproxy_auth() -> Iterator[TinyProxy]:
    """tinyproxy on 127.0.0.1 asking for Basic auth ``PROXY_AUTH``."""
    with TinyProxy(auth=PROXY_AUTH) as proxy:
        yield proxy


SOCKS_AUTH = ("socksuser", "s0cks-pa55")


@pytest.fixture(scope="session")
def microsocks() -> Iterator[MicrosocksServer]:
    """microsocks (SOCKS5) on 127.0.0.1, no authentication."""
    with MicrosocksServer() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def microsocks_auth() -> Iterator[MicrosocksServer]:
    """microsocks on 127.0.0.1 asking for the RFC 1929 user name and password ``SOCKS_AUTH``."""
    with MicrosocksServer(auth=SOCKS_AUTH) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def pproxy_socks() -> Iterator[PproxyServer]:
    """pproxy serving SOCKS5 on 127.0.0.1, no authentication."""
    with PproxyServer() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def pproxy_socks_auth() -> Iterator[PproxyServer]:
    """pproxy serving SOCKS5 on 127.0.0.1 with ``SOCKS_AUTH`` (it then trusts our address)."""
    with PproxyServer(auth=SOCKS_AUTH) as proxy:
        yield proxy
