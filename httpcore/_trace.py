"""The ``"trace"`` request extension: which steps are reported, under which names.

Theory of operation: a request may carry a ``"trace"`` callback ``(event_name, info)`` (a
coroutine function in async code). Each traced step reports ``<step>.started`` with the
step's arguments as ``info``, then ``<step>.complete`` with ``{"return_value": ...}``, or
``<step>.failed`` with ``{"exception": exc}`` when it raised. The step names and the
``info`` keys are httpcore 1.x's, so tools written against it (httpx's command line
prints them) read ours unchanged. Every layer checks for a callback before anything
else: an untraced request builds no names and no dicts. The table below is the one
place the names live; the connection, HTTP/1.1 and HTTP/2 code report through it.
"""

from __future__ import annotations

__all__ = [
    "COMPLETE",
    "CONNECT_TCP",
    "CONNECT_UNIX_SOCKET",
    "FAILED",
    "HTTP2_RECEIVE_RESPONSE_BODY",
    "HTTP2_RECEIVE_RESPONSE_HEADERS",
    "HTTP2_RESPONSE_CLOSED",
    "HTTP2_SEND_CONNECTION_INIT",
    "HTTP2_SEND_REQUEST_BODY",
    "HTTP2_SEND_REQUEST_HEADERS",
    "HTTP11_RECEIVE_RESPONSE_BODY",
    "HTTP11_RECEIVE_RESPONSE_HEADERS",
    "HTTP11_RESPONSE_CLOSED",
    "HTTP11_SEND_REQUEST_BODY",
    "HTTP11_SEND_REQUEST_HEADERS",
    "PROXY_CONNECT",
    "RETRY",
    "SETUP_SOCKS5_CONNECTION",
    "STARTED",
    "START_TLS",
    "STEPS",
]

STARTED = ".started"
COMPLETE = ".complete"
FAILED = ".failed"

# step name                                            .started info -> .complete return_value
CONNECT_TCP = "connection.connect_tcp"  # host, port, local_address, timeout, socket_options -> stream
CONNECT_UNIX_SOCKET = "connection.connect_unix_socket"  # path, timeout, socket_options -> stream
START_TLS = "connection.start_tls"  # ssl_context, server_hostname, timeout -> the TLS stream
RETRY = "connection.retry"  # delay -> None (the back-off sleep before connecting again)
# host, port, remote_dns (never the credentials) -> the stream, now leading to the origin
SETUP_SOCKS5_CONNECTION = "connection.setup_socks5_connection"
HTTP11_SEND_REQUEST_HEADERS = "http11.send_request_headers"  # request -> None
HTTP11_SEND_REQUEST_BODY = "http11.send_request_body"  # request -> None
# request -> (http_version, status, reason_phrase, headers)
HTTP11_RECEIVE_RESPONSE_HEADERS = "http11.receive_response_headers"
HTTP11_RECEIVE_RESPONSE_BODY = "http11.receive_response_body"  # request -> None (spans the body)
HTTP11_RESPONSE_CLOSED = "http11.response_closed"  # {} -> None
HTTP2_SEND_CONNECTION_INIT = "http2.send_connection_init"  # request -> None (first request only)
HTTP2_SEND_REQUEST_HEADERS = "http2.send_request_headers"  # request, stream_id -> None
HTTP2_SEND_REQUEST_BODY = "http2.send_request_body"  # request, stream_id -> None
HTTP2_RECEIVE_RESPONSE_HEADERS = "http2.receive_response_headers"  # request, stream_id -> (status, headers)
HTTP2_RECEIVE_RESPONSE_BODY = "http2.receive_response_body"  # request, stream_id -> None (spans the body)
HTTP2_RESPONSE_CLOSED = "http2.response_closed"  # stream_id -> None

# Ours, not 1.x's: the CONNECT exchange of a tunnel through an HTTP proxy. Its head holds
# the proxy's credentials, so it is reported as this one step, not as HTTP/1.1 steps.
PROXY_CONNECT = "connection.proxy_connect"  # origin -> None

STEPS = (
    CONNECT_TCP,
    CONNECT_UNIX_SOCKET,
    START_TLS,
    RETRY,
    SETUP_SOCKS5_CONNECTION,
    HTTP11_SEND_REQUEST_HEADERS,
    HTTP11_SEND_REQUEST_BODY,
    HTTP11_RECEIVE_RESPONSE_HEADERS,
    HTTP11_RECEIVE_RESPONSE_BODY,
    HTTP11_RESPONSE_CLOSED,
    HTTP2_SEND_CONNECTION_INIT,
    HTTP2_SEND_REQUEST_HEADERS,
    HTTP2_SEND_REQUEST_BODY,
    HTTP2_RECEIVE_RESPONSE_HEADERS,
    HTTP2_RECEIVE_RESPONSE_BODY,
    HTTP2_RESPONSE_CLOSED,
)
