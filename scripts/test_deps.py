#!/usr/bin/env python
"""Install the Debian programs the test suite runs as real servers, when they are missing.

    python scripts/test_deps.py           # install what is missing (needs root and apt-get)
    python scripts/test_deps.py --check   # exit 1 listing what is missing, install nothing

``make test`` runs this before pytest. Each row of ``PROGRAMS`` is a binary the tests
start and the Debian package that provides it; add a row to add a program. Without root
or apt-get nothing is installed and the fixtures that need a missing program fail with
a message naming the package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

# binary name -> Debian package
PROGRAMS: dict[str, str] = {
    "tinyproxy": "tinyproxy",  # HTTP proxy: forwarding, CONNECT, Basic auth
    "microsocks": "microsocks",  # SOCKS5 proxy, with and without RFC 1929 auth
}

SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"]
)


def find_program(name: str) -> str | None:
    """The program's path (Debian puts some daemons in /usr/sbin, off a user's PATH)."""
    return shutil.which(name, path=SEARCH_PATH)


def missing() -> dict[str, str]:
    return {name: package for name, package in PROGRAMS.items() if find_program(name) is None}


def install(packages: list[str]) -> int:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"test_deps: not root or no apt-get; install by hand: {' '.join(packages)}", file=sys.stderr)
        return 0  # the fixtures say what is missing
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"test_deps: installing {' '.join(packages)} from Debian packages ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, check=False)
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    return subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report what is missing")
    args = parser.parse_args()
    needed = missing()
    if not needed:
        return 0
    if args.check:
        print(f"test_deps: missing {', '.join(sorted(needed))}", file=sys.stderr)
        return 1
    status = install(sorted(set(needed.values())))
    still = missing()
    if still:
        print(f"test_deps: still missing {', '.join(sorted(still))}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
