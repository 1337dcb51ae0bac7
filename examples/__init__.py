"""Runnable examples built on httpcore; ``examples.gateway`` is the ASGI gateway."""
