"""pytest plugin for requests' own test suite: every session on ``HTTPCoreAdapter``.

Loaded with ``-p requests_suite_plugin`` by ``scripts/run_requests_suite.py``. When the
environment says ``REQUESTS_SUITE_ADAPTER=httpcore`` it replaces ``HTTPAdapter`` in
``requests.adapters`` and ``requests.sessions`` before any test module is imported (so
``from requests.adapters import HTTPAdapter`` in the tests gets ours too), and arms a
tripwire: a test during which urllib3's connection pool is asked to send anything fails,
even if the test swallowed the exception. With ``REQUESTS_SUITE_ADAPTER=default``
nothing is patched, for the baseline run.
"""

from __future__ import annotations

import os
import typing

import pytest

ADAPTER = os.environ.get("REQUESTS_SUITE_ADAPTER", "httpcore")
_tripped: list[str] = []

if ADAPTER == "httpcore":
    import requests.adapters
    import requests.sessions
    import urllib3.connectionpool

    from httpcore.contrib.requests import HTTPCoreAdapter

    requests.adapters.HTTPAdapter = HTTPCoreAdapter  # type: ignore[misc]
    requests.sessions.HTTPAdapter = HTTPCoreAdapter  # type: ignore[attr-defined]
    requests.HTTPAdapter = HTTPCoreAdapter  # type: ignore[attr-defined]

    def _tripwire(
        self: typing.Any, method: str, url: str, *args: object, **kwargs: object
    ) -> typing.NoReturn:
        _tripped.append(f"urllib3 sent {method} {url} to {self}")
        raise AssertionError(f"tripwire: urllib3's connection pool was asked to send {method} {url}")

    urllib3.connectionpool.HTTPConnectionPool.urlopen = _tripwire  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> typing.Generator[None, typing.Any, None]:
    outcome = yield
    report = outcome.get_result()
    if _tripped and call.when == "call":
        report.outcome = "failed"
        report.longrepr = "\n".join(_tripped)
        _tripped.clear()


def pytest_report_header() -> str:
    return f"requests suite adapter: {ADAPTER}"
