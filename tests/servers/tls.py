"""TLS material for the test servers, made with trustme.

Theory of operation: one throw-away certificate authority (``get_ca``) is
created lazily per test session and cached, together with one server leaf
certificate valid for ``localhost``, ``127.0.0.1`` and ``::1``
(``get_server_cert``).  Everything else derives from those two objects:

* ``server_ssl_context`` / ``client_ssl_context`` build fresh ``SSLContext``
  objects on each call, so callers may mutate them freely;
* ``write_cert_files`` writes PEM files into a directory of the caller's
  choosing (uvicorn and hypercorn want paths, not contexts).

Nothing here touches the network.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import trustme

__all__ = [
    "SERVER_IDENTITIES",
    "CertFiles",
    "client_ssl_context",
    "get_ca",
    "get_server_cert",
    "server_ssl_context",
    "write_cert_files",
]

SERVER_IDENTITIES = ("localhost", "127.0.0.1", "::1")


class CertFiles(NamedTuple):
    certfile: Path  # server leaf certificate chain (PEM)
    keyfile: Path  # server private key (PEM)
    ca_certfile: Path  # the CA certificate clients should trust (PEM)


@functools.cache
def get_ca() -> trustme.CA:
    """The session-wide test certificate authority."""
    return trustme.CA()


@functools.cache
def get_server_cert() -> trustme.LeafCert:
    """The server certificate for localhost, 127.0.0.1 and ::1."""
    return get_ca().issue_cert(*SERVER_IDENTITIES)


def server_ssl_context(alpn_protocols: Sequence[str] | None = None) -> ssl.SSLContext:
    """A fresh server-side context presenting the test certificate.

    ``alpn_protocols`` e.g. ``["h2", "http/1.1"]``; None means no ALPN at all.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    get_server_cert().configure_cert(ctx)
    if alpn_protocols is not None:
        ctx.set_alpn_protocols(list(alpn_protocols))
    return ctx


def client_ssl_context(alpn_protocols: Sequence[str] | None = None) -> ssl.SSLContext:
    """A fresh client-side context that trusts (only) the test CA."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    get_ca().configure_trust(ctx)
    if alpn_protocols is not None:
        ctx.set_alpn_protocols(list(alpn_protocols))
    return ctx


def write_cert_files(directory: Path) -> CertFiles:
    """Write the server key, server chain and CA cert as PEM into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = CertFiles(
        certfile=directory / "server.pem",
        keyfile=directory / "server.key",
        ca_certfile=directory / "ca.pem",
    )
    leaf = get_server_cert()
    files.keyfile.write_bytes(leaf.private_key_pem.bytes())
    files.certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    files.ca_certfile.write_bytes(get_ca().cert_pem.bytes())
    return files
