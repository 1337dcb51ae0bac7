"""Integrations that put httpcore under other libraries; each is an optional extra.

Nothing in the core imports from here: ``httpcore.contrib.requests`` is a transport
adapter for ``requests`` (``pip install httpcore[requests]``), ``httpcore.contrib.httpx``
holds transports for httpx and httpx2 clients (``pip install httpcore[httpx]``).
"""

__all__: list[str] = []
