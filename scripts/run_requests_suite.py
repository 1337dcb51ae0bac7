"""Run requests' own test suite with every session on ``HTTPCoreAdapter`` (the judge of
issue 14), or on the default adapter for the baseline.

    python scripts/run_requests_suite.py                  # our adapter, tripwire armed
    python scripts/run_requests_suite.py --adapter default
    python scripts/run_requests_suite.py -- -k test_stream -x   # extra pytest arguments

It keeps everything outside the repository, in a cache directory (``--cache``, default
``~/.cache/httpcore-requests-suite``): a virtualenv with requests and its test
dependencies plus this checkout installed editable, and requests' sdist (which ships its
tests), unpacked there and run unmodified. The plugin ``requests_suite_plugin.py``
beside this script swaps the adapter in and arms the tripwire. Tests that need the
internet (a DNS lookup of a public name, a connect to a non-routable address) are
deselected the same way for both adapters.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

REQUESTS_VERSION = "2.34.2"
TEST_DEPS = [
    f"requests[socks]=={REQUESTS_VERSION}",
    "pytest-httpbin==2.1.0",
    "httpbin~=0.10.0",
    "pytest-mock",
    "pytest-timeout",
    "trustme",
]
# Tests that would leave this machine: public DNS names and a non-routable address.
OFFLINE_DESELECT = [
    "tests/test_requests.py::TestRequests::test_errors[http://doesnotexist.google.com-ConnectionError]",
    "tests/test_requests.py::TestTimeout::test_connect_timeout",
    "tests/test_requests.py::TestTimeout::test_total_timeout_connect",
]
ROOT = Path(__file__).resolve().parent.parent


def _run(*args: object, cwd: Path | None = None, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(a) for a in args], cwd=cwd, env=env)


def prepare(cache: Path) -> tuple[Path, Path]:
    """The suite's virtualenv python and the unpacked sdist, made once."""
    cache.mkdir(parents=True, exist_ok=True)
    python = cache / "venv" / "bin" / "python"
    stamp = cache / "venv" / f".installed-{REQUESTS_VERSION}"
    if not stamp.exists():
        venv.create(cache / "venv", with_pip=True)
        pip = [python, "-m", "pip", "install", "-q"]
        if _run(*pip, *TEST_DEPS, "-e", f"{ROOT}[http2,requests]"):
            raise SystemExit("installing the suite's dependencies failed")
        stamp.touch()
    source = cache / f"requests-{REQUESTS_VERSION}"
    if not (source / "tests").is_dir():
        download = [python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps"]
        if _run(*download, "-d", cache, f"requests=={REQUESTS_VERSION}"):
            raise SystemExit("downloading requests' sdist failed")
        with tarfile.open(cache / f"requests-{REQUESTS_VERSION}.tar.gz") as archive:
            try:
                archive.extractall(cache, filter="data")
            except TypeError:  # Python before 3.10.12 has no extraction filters
                archive.extractall(cache)
    return python, source


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapter", choices=["httpcore", "default"], default="httpcore")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "httpcore-requests-suite")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    python, source = prepare(args.cache)
    env = dict(os.environ, REQUESTS_SUITE_ADAPTER=args.adapter)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "scripts"), env.get("PYTHONPATH")]))
    deselect = [f"--deselect={test}" for test in OFFLINE_DESELECT]
    command = [
        python, "-m", "pytest", "tests", "-p", "requests_suite_plugin", "-p", "no:cacheprovider",
        "-q", "--timeout=60", "-o", "addopts=", *deselect, *args.pytest_args,
    ]  # fmt: skip
    return _run(*command, cwd=source, env=env)


if __name__ == "__main__":
    sys.exit(main())
