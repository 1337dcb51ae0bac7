"""The httpcore 1.x surface that httpx 0.28 relies on: names, version, failure types.

httpx's own suite (``scripts/run_httpx_suite.py``, ``make httpx-suite``) is the full
check; these are the properties it depends on, kept here so ``make test`` sees them.
"""

from __future__ import annotations

import pytest

import httpcore
from tests.servers.asgi_server import UvicornServer

# Every exception class httpcore 1.x has in its namespace; httpx maps each by name.
EXCEPTIONS_1X = {
    "ConnectError",
    "ConnectTimeout",
    "ConnectionNotAvailable",
    "LocalProtocolError",
    "NetworkError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "TimeoutException",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
}


def test_namespace_holds_exactly_the_1x_exception_classes() -> None:
    # httpx's suite scans vars(httpcore) and wants an httpx exception of each name.
    classes = [value for value in vars(httpcore).values() if isinstance(value, type)]
    found = {cls.__name__ for cls in classes if issubclass(cls, Exception)}
    assert found == EXCEPTIONS_1X
    assert set(httpcore.__all__) >= EXCEPTIONS_1X


def test_our_own_exception_names_stay_importable() -> None:
    from httpcore import HTTPCoreError, PoolClosed

    assert httpcore.HTTPCoreError is HTTPCoreError
    assert issubclass(PoolClosed, HTTPCoreError)
    assert issubclass(httpcore.ReadTimeout, httpcore.HTTPCoreError)
    assert {"HTTPCoreError", "PoolClosed"} <= set(dir(httpcore)) & set(httpcore.__all__)
    missing = "Nope"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        getattr(httpcore, missing)


def test_version_is_in_the_1x_line_above_encodes_last() -> None:
    major, minor, patch = (int(part) for part in httpcore.__version__.split("."))
    assert major == 1 and (minor, patch) > (0, 9)


def test_out_of_range_port_is_a_connect_error(server: UvicornServer) -> None:
    # httpx builds URLs from parts and expects ConnectError for a port no socket can have.
    url = httpcore.URL(scheme="http", host="127.0.0.1", port=123456, target="/")
    with httpcore.ConnectionPool() as pool:
        with pytest.raises(httpcore.ConnectError, match="123456"):
            pool.request("GET", url)
        assert pool.connections == []
        assert pool.request("GET", server.url).status_code == 200  # the pool is unharmed


def test_unsupported_scheme_message_is_1x_wording() -> None:
    # httpx's command line prints it as is.
    with pytest.raises(
        httpcore.UnsupportedProtocol, match=r"^Request URL has an unsupported protocol 'ftp://'\.$"
    ):
        httpcore.URL("ftp://example.com/").origin
