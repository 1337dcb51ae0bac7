#!/usr/bin/env python
"""Run httpx 0.28.1's own test suite with this package installed as its ``httpcore``.

httpx's sdist ships its tests. This script keeps a venv of its own under
``.httpx-suite/`` (gitignored), installs into it, in one pip resolve, this package
(editable, so the run sees the working tree), httpx from its sdist with the extras its
tests use, and the test tools at the versions httpx 0.28.1 pins; then runs httpx's suite
from the unpacked sdist. The resolve itself is a check: pip must accept this package as
the ``httpcore==1.*`` that httpx requires, with no flags.

Before the tests, a tripwire makes sure ``import httpcore`` in that venv is this working
tree and not encode's package. Tests marked ``network`` (they reach the internet) are
deselected; everything else runs on loopback. The venv is reused while the inputs (this
script's requirements and the project's setup.cfg) are unchanged.

    python scripts/run_httpx_suite.py              # the whole suite
    python scripts/run_httpx_suite.py -- -k proxy  # extra pytest arguments after --
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".httpx-suite"
HTTPX_VERSION = "0.28.1"
HTTPX_EXTRAS = "brotli,cli,http2,socks,zstd"
# The test tools of httpx 0.28.1's requirements.txt, at its pins (newer ones warn, and
# its suite turns warnings into errors).
TEST_REQUIREMENTS = [
    "pytest==8.3.4",
    "trio==0.27.0",
    "trustme==1.2.0",
    "uvicorn==0.32.1",
    "chardet==5.2.0",
    "click==8.1.7",
]

__all__ = ["main"]


def _run(*args: str | Path, cwd: Path | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=cwd, check=True)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(" ".join([HTTPX_VERSION, HTTPX_EXTRAS, *TEST_REQUIREMENTS]).encode())
    digest.update((ROOT / "setup.cfg").read_bytes())
    return digest.hexdigest()


def _sdist() -> Path:
    """httpx's sdist, downloaded once, unpacked beside it; returns the unpacked tree."""
    tree = WORK / f"httpx-{HTTPX_VERSION}"
    archive = WORK / f"httpx-{HTTPX_VERSION}.tar.gz"
    if not archive.exists():
        _run(
            sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
            f"httpx=={HTTPX_VERSION}", "--dest", WORK,
        )  # fmt: skip
    if not (tree / "tests").is_dir():
        with tarfile.open(archive) as tar:
            tar.extractall(WORK, filter="data")
    return tree


def _venv(tree: Path, fresh: bool) -> Path:
    """The suite's venv, (re)built when its inputs changed; returns its python."""
    home = WORK / "venv"
    python = home / "bin" / "python"
    stamp = home / ".installed"
    wanted = _fingerprint()
    if fresh or not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(home, ignore_errors=True)
        venv.EnvBuilder(with_pip=True).create(home)
        _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        # One resolve: pip must take this package as httpx's httpcore==1.* by itself.
        _run(
            python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[http2]",
            f"httpx[{HTTPX_EXTRAS}] @ {tree.as_uri()}", *TEST_REQUIREMENTS,
        )  # fmt: skip
        stamp.write_text(wanted)
    return python


_TRIPWIRE = """
import pathlib, sys, httpcore
where = pathlib.Path(httpcore.__file__).resolve().parent
print(f"httpcore {httpcore.__version__} from {where}")
sys.exit(0 if where == pathlib.Path(sys.argv[1]).resolve() else 1)
"""


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--fresh", action="store_true", help="rebuild the venv")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    tree = _sdist()
    python = _venv(tree, args.fresh)
    check = subprocess.run([str(python), "-c", _TRIPWIRE, str(ROOT / "httpcore")], cwd=tree)
    if check.returncode != 0:
        print("the suite's venv does not import this working tree as httpcore", file=sys.stderr)
        return 1
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not network"]
    return subprocess.run([*command, *args.pytest_args], cwd=tree, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
