"""``HTTPCoreAdapter``: a transport adapter that runs ``requests`` on httpcore.

Mount it on a session for ``http://`` and ``https://`` and every request of that session
goes through one thread-safe httpcore ``ConnectionPool`` instead of urllib3::

    session = requests.Session()
    adapter = HTTPCoreAdapter()            # HTTPCoreAdapter(http2=True) for HTTP/2
    session.mount("http://", adapter)
    session.mount("https://", adapter)

The package is split by job: ``_adapter`` (sending, TLS settings, pools, retries),
``_raw`` (``Response.raw`` as urllib3's response), ``_decoders`` (Content-Encoding) and
``_errors`` (our exceptions as requests raises them). Needs ``pip install httpcore[requests]``.
"""

try:
    import requests  # noqa: F401
    import urllib3  # noqa: F401
except ImportError as exc:  # pragma: no cover - requests is installed for the tests
    raise ImportError(
        "httpcore.contrib.requests needs the 'requests' package: install it with "
        "'pip install httpcore[requests]'"
    ) from exc

from ._adapter import HTTPCoreAdapter
from ._raw import RawResponse

__all__ = ["HTTPCoreAdapter", "RawResponse"]
