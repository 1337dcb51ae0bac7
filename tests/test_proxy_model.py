"""The Proxy model: URL forms, credentials from auth= or the userinfo, the Basic header,
and nothing secret in a repr or an error message."""

from __future__ import annotations

import base64

import pytest

import httpcore
from httpcore._async.routes import connection_factory


def test_url_forms_and_default_ports() -> None:
    for url in (
        "http://proxy.local:3128",
        b"http://proxy.local:3128",
        httpcore.URL("http://proxy.local:3128"),
    ):
        proxy = httpcore.Proxy(url)
        assert proxy.origin == httpcore.Origin(b"http", b"proxy.local", 3128)
        assert proxy.auth is None
        assert proxy.headers == []
    assert httpcore.Proxy("https://p").origin.port == 443
    assert httpcore.Proxy("socks5://p").origin.port == 1080
    assert httpcore.Proxy("SOCKS5H://p").scheme == b"socks5h"
    assert httpcore.Proxy("http://[::1]:8080").origin.host == b"::1"


def test_credentials_from_the_userinfo_are_decoded_and_removed() -> None:
    proxy = httpcore.Proxy("http://us%40er:p%3Ass%20word@proxy.local:3128/")
    assert proxy.auth == (b"us@er", b"p:ss word")
    assert str(proxy.url) == "http://proxy.local:3128/"
    token = base64.b64encode(b"us@er:p:ss word")
    assert proxy.headers == [(b"Proxy-Authorization", b"Basic " + token)]
    assert "word" not in repr(proxy) and "us%40er" not in repr(proxy)
    assert repr(proxy) == "Proxy('http://proxy.local:3128/', auth=[hidden], headers=[1 hidden])"


def test_auth_argument_wins_and_headers_are_kept() -> None:
    proxy = httpcore.Proxy("https://old:creds@proxy.local", auth=("user", b"pass"), headers={"X-Trace": "1"})
    assert proxy.auth == (b"user", b"pass")
    assert proxy.headers[0] == (b"Proxy-Authorization", b"Basic " + base64.b64encode(b"user:pass"))
    assert proxy.headers[1] == (b"X-Trace", b"1")
    # A Proxy-Authorization of the caller's own is not replaced.
    own = httpcore.Proxy("http://p", auth=("u", "p"), headers=[(b"proxy-authorization", b"Bearer x")])
    assert own.headers == [(b"proxy-authorization", b"Bearer x")]
    # SOCKS has its own login: no HTTP header.
    assert httpcore.Proxy("socks5://u:p@p").headers == []
    assert httpcore.Proxy("socks5://u:p@p").auth == (b"u", b"p")


def test_bad_proxies_are_refused_without_showing_credentials() -> None:
    with pytest.raises(httpcore.UnsupportedProtocol, match="'ftp'"):
        httpcore.Proxy("ftp://proxy.local")
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.Proxy("proxy.local:3128")
    for bad in ("http://user:secret@[::1", "http://user:secret@host:99999", "http://user:s/ecret@host"):
        with pytest.raises(httpcore.HTTPCoreError) as info:
            httpcore.Proxy(bad)
        assert "secret" not in str(info.value) and "ecret" not in str(info.value)
    with pytest.raises(TypeError):
        httpcore.Proxy(3128)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        httpcore.Proxy("http://p", auth=("u", 1))  # type: ignore[arg-type]
    with pytest.raises(httpcore.LocalProtocolError):
        httpcore.Proxy("http://p", headers=[(b"X", b"a\r\nb")])


def test_routes_refuse_other_origin_schemes() -> None:
    key, _ = connection_factory(httpcore.Proxy("http://p:3128"))
    with pytest.raises(httpcore.UnsupportedProtocol):
        key(httpcore.URL("socks5://example.com/"))
    assert (
        key(httpcore.URL("http://a/"))
        == key(httpcore.URL("http://b:81/"))
        == httpcore.Origin(b"http", b"p", 3128)
    )
    assert key(httpcore.URL("https://a/")) == httpcore.Origin(b"https", b"a", 443)
