"""``HTTPCoreAdapter``: requests' ``HTTPAdapter`` with httpcore underneath.

Theory of operation: ``send()`` does what the default adapter does, in the same order
and with the same overridable helpers (``cert_verify``, ``add_headers``,
``build_response``), but sends on httpcore's sync ``ConnectionPool``:

- Pools: one per distinct TLS configuration (``cert_verify``'s result, see ``_tls``) and
  proxy, each shared by every host and thread; kept in ``Pools`` objects that stand
  where urllib3's managers stood (``adapter.poolmanager``, ``adapter.proxy_manager``),
  so ``close()`` and code that counts or clears them keep working. No urllib3 pool is
  ever made.
- Requests: the URL is split once per distinct URL (cached); the body is given to the
  pool as bytes or as an iterator of blocks (files are read in blocks), and timeouts
  become the pool's per-request timeout extension (cached per distinct value).
- Retries: ``max_retries`` is a urllib3 ``Retry``, driven as urllib3 drives it:
  ``increment()`` on each failure (our errors expressed as the urllib3 errors it counts,
  see ``_errors``) and for a status in ``status_forcelist`` or with ``Retry-After``,
  then ``sleep()``; the body is rewound before sending again.
- The response is a ``_raw.RawResponse`` holding the streaming body; requests reads it.
"""

from __future__ import annotations

import functools
import ssl
import threading
import typing
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.exceptions as rq
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, DEFAULT_RETRIES, HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, prepend_scheme_if_needed, select_proxy
from urllib3 import exceptions as u3
from urllib3.util import Timeout as Urllib3Timeout
from urllib3.util import parse_url
from urllib3.util.retry import Retry

from ... import _exceptions as hc
from ..._models import URL, Request, enforce_headers
from ..._proxy import Proxy
from ..._sync.connection_pool import ConnectionPool
from ._errors import Endpoint, requests_error, send_error
from ._raw import RawResponse
from ._tls import TLSKey, TLSSettings, make_context

__all__ = ["HTTPCoreAdapter", "Pools"]

_BLOCK_SIZE = 65536
_TIMEOUT_CACHE_SIZE = 64
_PLAIN_TLS: TLSKey = ("CERT_REQUIRED", None, None, None, None)
_PLAIN_SETTINGS = TLSSettings()
_PLAIN_SETTINGS.cert_reqs = "CERT_NONE"


class Pools:
    """The httpcore pools of one adapter for one route (direct, or one proxy), by TLS
    configuration: what ``adapter.poolmanager`` is, in place of urllib3's PoolManager.

    Like urllib3's, ``clear()`` leaves requests in flight alone: a pool that still
    carries one is closed when its last response is released.
    """

    def __init__(self, connection_pool_kw: dict[str, typing.Any], proxy: str | None = None) -> None:
        self.pools: dict[TLSKey, ConnectionPool] = {}
        self.connection_pool_kw = connection_pool_kw
        self.proxy = proxy
        self._lock = threading.Lock()
        self._in_use: dict[ConnectionPool, int] = {}
        self._retired: set[ConnectionPool] = set()

    def acquire(self, pool: ConnectionPool) -> None:
        """A request starts on ``pool``."""
        with self._lock:
            self._in_use[pool] = self._in_use.get(pool, 0) + 1

    def release(self, pool: ConnectionPool) -> None:
        """A request on ``pool`` ended (its response released, or it failed)."""
        with self._lock:
            count = self._in_use[pool] - 1
            if count:
                self._in_use[pool] = count
                return
            del self._in_use[pool]
            if pool not in self._retired:
                return
            self._retired.discard(pool)
        pool.close()

    def clear(self) -> None:
        """Close every pool (a busy one once it is free); new ones are made on the next request."""
        with self._lock:
            pools = list(self.pools.values())
            self.pools.clear()
            idle = [pool for pool in pools if pool not in self._in_use]
            self._retired.update(pool for pool in pools if pool in self._in_use)
        for pool in idle:
            pool.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [pools: {len(self.pools)}]>"


def _case_insensitive(joined: dict[str, tuple[str, str]]) -> CaseInsensitiveDict[str]:
    """requests' header dict holding ``joined`` (lower-case name: (name, value)), which
    is the layout of its ``_store``; filled key by key if that layout ever changes."""
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    store = getattr(headers, "_store", None)
    if isinstance(store, dict) and not store:
        store.update(joined)
    else:  # pragma: no cover - requests' layout since 1.0
        for name, value in joined.values():
            headers[name] = value
    return headers


def _header_items(headers: typing.Any) -> tuple[tuple[typing.Any, typing.Any], ...]:
    """A request's headers as (name, value) pairs, names as the caller spelled them: from
    requests' ``_store`` at once (the layout ``_case_insensitive`` relies on too)."""
    store = getattr(headers, "_store", None)
    if isinstance(store, dict):
        return tuple(store.values())
    return tuple(headers.items())  # pragma: no cover - requests' layout since 1.0


class _SplitURL(typing.NamedTuple):
    url: URL
    endpoint: Endpoint


@functools.lru_cache(maxsize=512)
def _split_url(url: str) -> _SplitURL:
    """The httpcore URL and the urllib3-style name for a prepared request's URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise rq.InvalidURL(exc) from None
    host = parts.hostname
    if not host:
        raise rq.InvalidURL(f"Invalid URL {url!r}: No host supplied")
    scheme = parts.scheme.lower()
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        target_url = URL(scheme=scheme, host=host, port=port, target=target)
    except hc.LocalProtocolError as exc:
        raise rq.InvalidURL(exc) from None
    default_port = 443 if scheme == "https" else 80
    return _SplitURL(target_url, Endpoint(scheme, host, port or default_port, url, target))


@functools.lru_cache(maxsize=_TIMEOUT_CACHE_SIZE)
def _plain_timeouts(timeout: typing.Any) -> dict[str, float | None]:
    if isinstance(timeout, tuple):
        try:
            connect, read = timeout
        except ValueError:
            raise ValueError(
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                f"or a single float to set both timeouts to the same value."
            ) from None
        return _urllib3_timeouts(Urllib3Timeout(connect=connect, read=read))
    return _urllib3_timeouts(Urllib3Timeout(connect=timeout, read=timeout))


def _urllib3_timeouts(timeout: Urllib3Timeout) -> dict[str, float | None]:
    connect = timeout.connect_timeout
    if timeout.total is not None:
        timeout = timeout.clone()
        timeout.start_connect()  # the read timeout of a total is what connecting leaves
    read = timeout.read_timeout
    connect = Urllib3Timeout.resolve_default_timeout(connect)
    return {"connect": connect, "read": read, "write": read, "pool": None}


def _timeouts(timeout: typing.Any) -> dict[str, float | None]:
    """The pool's timeout extension for requests' ``timeout`` argument."""
    if isinstance(timeout, Urllib3Timeout):
        return _urllib3_timeouts(timeout)
    try:
        return _plain_timeouts(timeout)
    except TypeError:  # unhashable: a list, say
        return _plain_timeouts.__wrapped__(timeout)


@functools.lru_cache(maxsize=256)
def _valid_headers(items: tuple[tuple[typing.Any, typing.Any], ...]) -> list[tuple[bytes, bytes]]:
    return enforce_headers(items)


def _checked_headers(items: tuple[tuple[typing.Any, typing.Any], ...]) -> list[tuple[bytes, bytes]]:
    """The request's headers, checked as the core checks them (sessions send the same
    headers again and again, so the check is cached); a fresh list each time."""
    try:
        return list(_valid_headers(items))
    except TypeError:  # unhashable: checked without the cache, and refused there
        return enforce_headers(items)


def _position(body: typing.Any) -> int | None:
    """Where a seekable file body starts, to send it again on a retry (else None)."""
    if not (hasattr(body, "tell") and hasattr(body, "seek")):
        return None
    try:
        position: int = body.tell()
    except OSError:  # a pipe or socket: it cannot be rewound
        return None
    return position


def _blocks(body: typing.Any) -> Iterator[bytes]:
    """A file-like body in blocks (text files encoded as UTF-8, as urllib3 does)."""
    while block := body.read(_BLOCK_SIZE):
        yield block.encode("utf-8") if isinstance(block, str) else block


def _chunks(body: typing.Any) -> Iterator[bytes]:
    """An iterable body, empty pieces skipped (they would end a chunked body)."""
    for chunk in body:
        if chunk:
            yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


def _content(body: typing.Any, chunked: bool) -> typing.Any:
    """The request body as the pool takes it: bytes, or an iterator of bytes."""
    if body is None or type(body) is bytes:
        return iter((body,)) if chunked and body else body
    if isinstance(body, str):
        return _content(body.encode("utf-8"), chunked)
    if hasattr(body, "read"):
        return _blocks(body)
    if isinstance(body, bytearray | memoryview):
        return _content(bytes(body), chunked)
    return _chunks(body)


class HTTPCoreAdapter(HTTPAdapter):
    """A ``requests`` transport adapter on httpcore's connection pool.

    Takes ``HTTPAdapter``'s arguments, and ``http2=True`` to offer HTTP/2 by ALPN on
    https:// (then threads sharing a session multiplex over one connection per origin).
    """

    __attrs__ = [*HTTPAdapter.__attrs__, "_http2"]  # noqa: RUF012 - requests' own spelling

    def __init__(
        self,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = DEFAULT_RETRIES,
        pool_block: bool = DEFAULT_POOLBLOCK,
        *,
        http2: bool = False,
    ) -> None:
        self._http2 = http2
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    # -- pools (in place of urllib3's managers) ----------------------------------------

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: typing.Any
    ) -> None:
        """Set up the (empty) pools; ``ssl_context`` in ``pool_kwargs`` is honoured."""
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self._lock = threading.Lock()
        self.poolmanager: typing.Any = Pools(pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: typing.Any) -> Pools:
        """The pools that send through ``proxy`` (a URL as requests selected it)."""
        manager = self.proxy_manager.get(proxy)
        if manager is None:
            proxy_url = prepend_scheme_if_needed(proxy, "http")
            if not parse_url(proxy_url).host:
                raise rq.InvalidProxyURL(
                    "Please check proxy URL. It is malformed and could be missing the host."
                )
            with self._lock:
                manager = self.proxy_manager.get(proxy)
                if manager is None:
                    manager = self.proxy_manager[proxy] = Pools(proxy_kwargs, proxy_url)
        return typing.cast(Pools, manager)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: dict[str, str] | None = None,
        cert: typing.Any = None,
    ) -> typing.Any:
        """The httpcore pool that would send ``request`` (not a urllib3 pool)."""
        url = typing.cast(str, request.url)
        proxy = select_proxy(url, proxies) if proxies else None
        return self._pool(url, verify, cert, proxy)[0]

    def get_connection(self, url: str, proxies: dict[str, str] | None = None) -> typing.Any:
        """The httpcore pool that would send to ``url`` with default TLS settings."""
        proxy = select_proxy(url, proxies) if proxies else None
        return self._pool(url, True, None, proxy)[0]

    def _pool(
        self, url: str, verify: bool | str | None, cert: typing.Any, proxy: str | None
    ) -> tuple[ConnectionPool, TLSSettings, Pools]:
        if cert is None and url[:5].lower() == "http:" and type(self).cert_verify is HTTPAdapter.cert_verify:
            settings, key = _PLAIN_SETTINGS, _PLAIN_TLS  # what cert_verify says for http://
        else:
            settings = TLSSettings()
            self.cert_verify(settings, url, verify, cert)  # type: ignore[arg-type]
            key = settings.key() if url[:6].lower() == "https:" else _PLAIN_TLS
        manager = self.poolmanager if proxy is None else self.proxy_manager_for(proxy)
        pool = manager.pools.get(key)
        if pool is None:
            with self._lock:
                pool = manager.pools.get(key)
                if pool is None:
                    pool = manager.pools[key] = self._new_pool(key, manager)
        return pool, settings, manager

    def _new_pool(self, key: TLSKey, manager: Pools) -> ConnectionPool:
        custom = self.poolmanager.connection_pool_kw.get("ssl_context")
        try:
            context = make_context(key, custom)
            proxy = None if manager.proxy is None else self._proxy(manager.proxy, key)
        except rq.RequestException:
            raise
        except (ssl.SSLError, OSError) as exc:
            # urllib3 loads the files while connecting: the same error, as requests shows it.
            raise rq.SSLError(u3.SSLError(exc)) from exc
        maxsize = self._pool_maxsize
        return ConnectionPool(
            ssl_context=context,
            timeout=None,
            http1=True,
            http2=self._http2,
            proxy=proxy,
            max_connections=max(maxsize, 1) if self._pool_block else None,
            max_keepalive_connections=max(maxsize, 0) * max(self._pool_connections, 1),
        )

    def _proxy(self, url: str, key: TLSKey) -> Proxy:
        """Our Proxy for a proxy URL: an http(s) proxy gets ``proxy_headers()`` (with
        the credentials from the URL, as requests computes them) and, for https, the
        request's TLS settings, as urllib3 uses them for the proxy too."""
        scheme = url.partition(":")[0].lower()
        if scheme not in ("http", "https"):
            try:
                return Proxy(url)
            except hc.HTTPCoreError as exc:
                raise rq.InvalidSchema(f"Unsupported proxy {scheme!r}: {exc}") from None
        parts = urlsplit(url)
        bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        context = make_context(key, None) if scheme == "https" else None
        return Proxy(bare, headers=list(self.proxy_headers(url).items()), ssl_context=context)

    def close(self) -> None:
        """Close every connection; the adapter makes new ones if used again."""
        self.poolmanager.clear()
        for proxy in self.proxy_manager.values():
            proxy.clear()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: typing.Any = None,
        verify: bool | str | None = True,
        cert: typing.Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send a prepared request on httpcore; the same contract as ``HTTPAdapter.send``."""
        url = typing.cast(str, request.url)
        split = _split_url(url)
        proxy = select_proxy(url, proxies) if proxies else None
        pool, settings, manager = self._pool(url, verify, cert, proxy)
        self.add_headers(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        timeouts = _timeouts(timeout)
        endpoint = split.endpoint
        if settings.cert_reqs == "CERT_NONE" and endpoint.scheme == "https":
            warnings.warn(
                f"Unverified HTTPS request is being made to host '{endpoint.host}'. "
                "Adding certificate verification is strongly advised. See: "
                "https://urllib3.readthedocs.io/en/latest/advanced-usage.html#tls-warnings",
                u3.InsecureRequestWarning,
                stacklevel=2,
            )
        method = typing.cast(str, request.method)
        body = request.body
        chunked = not (body is None or "Content-Length" in request.headers)
        position = _position(body)
        try:
            hc_request = Request(
                method, split.url, content=_content(body, chunked), extensions={"timeout": timeouts}
            )
            hc_request.headers = _checked_headers(_header_items(request.headers))
        except hc.LocalProtocolError as exc:
            raise rq.InvalidHeader(exc, request=request) from None
        retries: Retry = self.max_retries
        while True:
            manager.acquire(pool)
            try:
                response = pool.handle_request(hc_request)
            except BaseException as exc:
                manager.release(pool)
                if not isinstance(exc, hc.HTTPCoreError):
                    raise
                where = Endpoint(
                    endpoint.scheme,
                    endpoint.host,
                    endpoint.port,
                    url,
                    endpoint.target,
                    timeouts["connect"],
                    timeouts["read"],
                )
                if manager.proxy is not None:
                    where.proxy = urlsplit(manager.proxy).hostname or manager.proxy
                error = send_error(exc, where)
                try:
                    if isinstance(error, rq.RequestException):
                        raise error
                    retries = retries.increment(method, where.target, error=error, _pool=where)  # type: ignore[arg-type]
                except (u3.HTTPError, rq.RequestException) as final:
                    raise requests_error(final, request) from exc
                retries.sleep()
                hc_request.content = self._rewind(body, position, chunked, hc_request.content)
                continue
            raw = RawResponse(response, endpoint, method, retries, functools.partial(manager.release, pool))
            if (
                retries.status_forcelist or retries.total or type(retries).is_retry is not Retry.is_retry
            ) and (retries.is_retry(method, raw.status, raw.header("retry-after") is not None)):
                try:
                    retries = retries.increment(method, endpoint.target, response=raw, _pool=endpoint)  # type: ignore[arg-type]
                except u3.MaxRetryError as exc:
                    if retries.raise_on_status:
                        raw.drain_conn()
                        raw.release_conn()
                        raise requests_error(exc, request) from None
                    return self.build_response(request, raw)
                raw.drain_conn()
                raw.release_conn()
                retries.sleep(raw)  # type: ignore[arg-type]
                hc_request.content = self._rewind(body, position, chunked, hc_request.content)
                continue
            return self.build_response(request, raw)

    def build_response(self, req: requests.PreparedRequest, resp: typing.Any) -> requests.Response:
        """``HTTPAdapter.build_response``, with the header dict filled from ours at once."""
        if not isinstance(resp, RawResponse):
            return super().build_response(req, resp)
        response = requests.Response()
        response.status_code = resp.status
        response.headers = _case_insensitive(resp.joined_headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        url = req.url
        response.url = url.decode("utf-8") if isinstance(url, bytes) else typing.cast(str, url)
        if resp.has_cookies:  # else requests' extraction would find nothing
            extract_cookies_to_jar(response.cookies, req, resp)
        response.request = req
        response.connection = self
        return response

    @staticmethod
    def _rewind(body: typing.Any, position: int | None, chunked: bool, content: typing.Any) -> typing.Any:
        """The body to send again: bytes as they are, a file from where it started."""
        if position is not None:
            body.seek(position)
            return _content(body, chunked)
        if isinstance(content, Iterator) and isinstance(body, bytes | str | bytearray | memoryview):
            return _content(body, chunked)
        return content
