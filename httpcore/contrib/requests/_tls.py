"""TLS settings of a request as requests states them, turned into an ``ssl.SSLContext``.

Theory of operation: requests' ``HTTPAdapter.cert_verify(conn, url, verify, cert)``
writes the settings of one request onto a urllib3 connection (``cert_reqs``,
``ca_certs``, ``ca_cert_dir``, ``cert_file``, ``key_file``) and checks that the files
exist. The adapter hands it a ``TLSSettings`` instead, so a subclass that overrides
``cert_verify`` keeps working, and ``key()`` of the result selects the pool (one pool,
and one context, per distinct set of settings). ``make_context`` builds that context
once: None for the default (verified against certifi's bundle, which is also requests'
default bundle), so the shared process-wide context is used.
"""

from __future__ import annotations

import ssl
import typing

__all__ = ["TLSSettings", "TLSKey", "make_context"]

TLSKey = tuple[typing.Any, ...]


class TLSSettings:
    """The attributes ``cert_verify`` sets, as on a urllib3 connection."""

    __slots__ = ("ca_cert_dir", "ca_certs", "cert_file", "cert_reqs", "key_file")

    def __init__(self) -> None:
        self.cert_reqs: str | None = None
        self.ca_certs: str | None = None
        self.ca_cert_dir: str | None = None
        self.cert_file: str | None = None
        self.key_file: str | None = None

    def key(self) -> TLSKey:
        return (self.cert_reqs, self.ca_certs, self.ca_cert_dir, self.cert_file, self.key_file)


def make_context(key: TLSKey, custom: ssl.SSLContext | None = None) -> ssl.SSLContext | None:
    """The context for these settings; None means the library's default context.

    ``custom`` is a context the user gave (``init_poolmanager(ssl_context=...)``): used
    as it is when verifying, as urllib3 would use it.
    """
    cert_reqs, ca_certs, ca_cert_dir, cert_file, key_file = key
    verify = cert_reqs != "CERT_NONE"
    if verify and custom is not None:
        context = custom
    elif verify:
        if ca_certs is None and ca_cert_dir is None and cert_file is None:
            return None
        context = ssl.create_default_context(cafile=ca_certs, capath=ca_cert_dir)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
