"""The SOCKS5 client handshake (RFC 1928, RFC 1929) as a sans-I/O state machine.

Theory of operation: ``SOCKS5Handshake`` never touches a socket. ``start()`` returns the
greeting (the authentication methods we offer); each ``receive(data)`` feeds it what the
proxy sent, in pieces of any size, and returns the bytes to send next (b"" when it needs
more input). ``done`` turns true once the proxy has granted the CONNECT, after which the
stream carries the origin's bytes. SOCKS5 is strictly lock-step: the proxy answers each
of our messages and never speaks out of turn, so bytes beyond a complete answer are a
protocol error, never buffered for later.

Each answer is parsed once it is complete; its length is known early (two bytes for
the method choice and the RFC 1929 status; the CONNECT reply's depends on its address
type). A refusing reply is reported from its first two bytes, as some proxies close
without sending the rest. Every failure is a ``ProxyError`` whose message says what
went wrong in words; a CONNECT refusal is a ``SOCKSReplyError`` carrying the code, so
the caller can tell a refusal of one address (worth trying the next) from others.
Credentials appear only in the bytes sent, never in a message or a repr.
"""

from __future__ import annotations

import enum
import ipaddress

from ._exceptions import ProxyError

__all__ = [
    "ADDRESS_LENGTHS",
    "REPLY_MESSAGES",
    "SOCKS5Handshake",
    "SOCKSReplyError",
    "encode_address",
    "encode_credentials",
]

VERSION = 0x05
AUTH_VERSION = 0x01  # of the RFC 1929 sub-negotiation
CONNECT = 0x01

NO_AUTH = 0x00
USERNAME_PASSWORD = 0x02
NO_ACCEPTABLE_METHODS = 0xFF
METHOD_NAMES = {
    NO_AUTH: "no authentication",
    0x01: "GSSAPI",
    USERNAME_PASSWORD: "username and password",
}

ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04
# Address type -> length of the address that follows; a domain name is length-prefixed.
ADDRESS_LENGTHS = {ATYP_IPV4: 4, ATYP_IPV6: 16}

REPLY_MESSAGES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused by destination host",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}
# Replies about the address we asked for: another address of the same host may work.
ADDRESS_FAILURES = frozenset({0x03, 0x04, 0x05, 0x06, 0x08})

MAX_FIELD = 255  # RFC 1929 user name and password, RFC 1928 domain name


class SOCKSReplyError(ProxyError):
    """The proxy refused the CONNECT; ``reply_code`` is RFC 1928's REP field."""

    def __init__(self, message: str, reply_code: int) -> None:
        super().__init__(message)
        self.reply_code = reply_code

    @property
    def address_failed(self) -> bool:
        """True when the refusal concerns the address asked for, not the proxy's policy."""
        return self.reply_code in ADDRESS_FAILURES


def encode_credentials(username: bytes | str, password: bytes | str) -> tuple[bytes, bytes]:
    """The RFC 1929 user name and password as bytes (str is UTF-8), each at most 255 bytes."""
    fields = []
    for name, value in (("user name", username), ("password", password)):
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, bytes):
            raise TypeError(f"The SOCKS proxy {name} must be str or bytes, not {type(value).__name__}")
        if len(value) > MAX_FIELD:
            raise ProxyError(
                f"The SOCKS proxy {name} is {len(value)} bytes long; SOCKS5 (RFC 1929) allows at most 255"
            )
        fields.append(value)
    return fields[0], fields[1]


def encode_address(host: str, port: int) -> bytes:
    """DST.ADDR and DST.PORT of a request: an IP literal as such, anything else as a
    domain name for the proxy to resolve."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            name = host.encode("ascii")
        except UnicodeEncodeError:
            raise ProxyError(f"The host {host!r} is not ASCII (IDNA-encode it first)") from None
        if not name or len(name) > MAX_FIELD:
            raise ProxyError(f"A SOCKS5 domain name is 1 to 255 bytes long, not {len(name)}") from None
        address = bytes((ATYP_DOMAIN, len(name))) + name
    else:
        address = bytes((ATYP_IPV4 if ip.version == 4 else ATYP_IPV6,)) + ip.packed
    return address + port.to_bytes(2, "big")


def _describe_version(data: bytes) -> str:
    if data.startswith(b"HTTP/"[: len(data)]):
        return "it answered in HTTP: is it an HTTP proxy rather than a SOCKS5 one?"
    return f"its answer starts with 0x{data[0]:02x}, not SOCKS5's version 0x05"


class _State(enum.Enum):
    GREETING = "greeting"  # nothing sent yet
    METHOD = "method"  # awaiting the chosen method: VER METHOD
    AUTH = "auth"  # awaiting the RFC 1929 status: VER STATUS
    REPLY = "reply"  # awaiting the CONNECT reply: VER REP RSV ATYP BND.ADDR BND.PORT
    DONE = "done"


# What a proxy that closes the connection at each step most likely meant.
_CLOSED_WHILE = {
    _State.METHOD: "before choosing an authentication method",
    _State.AUTH: "after receiving the user name and password (most likely it rejected them)",
    _State.REPLY: "before answering the CONNECT request",
}


class SOCKS5Handshake:
    """One SOCKS5 CONNECT to ``host``:``port``, optionally with RFC 1929 credentials."""

    def __init__(self, host: str, port: int, auth: tuple[bytes | str, bytes | str] | None = None) -> None:
        self._target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._request = bytes((VERSION, CONNECT, 0x00)) + encode_address(host, port)
        self._auth = None if auth is None else encode_credentials(*auth)
        # With credentials both methods are offered: a proxy that needs none may say so.
        self._methods = (USERNAME_PASSWORD, NO_AUTH) if self._auth is not None else (NO_AUTH,)
        self._state = _State.GREETING
        self._chosen = NO_AUTH
        self._buffer = b""
        self.bound_address: tuple[str, int] | None = None
        self._parsers = {
            _State.METHOD: self._parse_method,
            _State.AUTH: self._parse_auth,
            _State.REPLY: self._parse_reply,
        }

    @property
    def done(self) -> bool:
        """The proxy granted the CONNECT: the stream now leads to the target."""
        return self._state is _State.DONE

    def closed_error(self) -> ProxyError:
        """The error for a proxy that closed the connection now, saying when it did."""
        message = f"The SOCKS proxy closed the connection {_CLOSED_WHILE.get(self._state, 'unexpectedly')}"
        if self._state is _State.METHOD and self._auth is None:
            message += "; it may need a user name and password"
        return ProxyError(message)

    @property
    def requesting(self) -> bool:
        """The CONNECT request was the last message returned, and is not answered yet."""
        return self._state is _State.REPLY and not self._buffer

    def retarget(self, host: str) -> bytes:
        """Aim the CONNECT request just returned, not sent yet, at ``host`` instead (an
        address resolved only once the proxy has greeted us); return the new request."""
        if not self.requesting:
            raise RuntimeError("The SOCKS5 CONNECT request can only be retargeted before it is sent")
        port = int.from_bytes(self._request[-2:], "big")
        self._target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._request = bytes((VERSION, CONNECT, 0x00)) + encode_address(host, port)
        return self._request

    def start(self) -> bytes:
        """The greeting: the authentication methods we offer."""
        if self._state is not _State.GREETING:
            raise RuntimeError("The SOCKS5 handshake was already started")
        self._state = _State.METHOD
        return bytes((VERSION, len(self._methods), *self._methods))

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the proxy; return what to send next (b"" if none yet)."""
        parser = self._parsers.get(self._state)
        if parser is None:
            raise RuntimeError(f"The SOCKS5 handshake expects no data now ({self._state.value})")
        buffer = self._buffer = self._buffer + data
        if not buffer:
            return b""
        needed = parser(buffer)
        if needed is None or len(buffer) < needed:
            return b""
        if len(buffer) > needed:
            raise ProxyError(
                f"The SOCKS proxy sent {len(buffer) - needed} unexpected bytes after its answer "
                f"({self._state.value})"
            )
        self._buffer = b""
        return self._advance()

    def _advance(self) -> bytes:
        """A complete answer was accepted: move on and return our next message."""
        if self._state is _State.METHOD and self._chosen == USERNAME_PASSWORD:
            assert self._auth is not None
            username, password = self._auth
            self._state = _State.AUTH
            return bytes((AUTH_VERSION, len(username))) + username + bytes((len(password),)) + password
        if self._state is _State.REPLY:
            self._state = _State.DONE
            return b""
        self._state = _State.REPLY
        return self._request

    # Each parser checks what it can of a (possibly partial) answer and returns the
    # answer's full length once it is known, else None.

    def _parse_method(self, buffer: bytes) -> int | None:
        if buffer[0] != VERSION:
            raise ProxyError(f"The proxy is not a SOCKS5 proxy: {_describe_version(buffer)}")
        if len(buffer) < 2:
            return None
        method = buffer[1]
        if method not in self._methods:
            offered = " or ".join(METHOD_NAMES[m] for m in self._methods)
            if method == NO_ACCEPTABLE_METHODS:
                hint = "" if self._auth is not None else "; it may need a user name and password"
                raise ProxyError(f"The SOCKS proxy accepts none of the methods offered ({offered}){hint}")
            name = METHOD_NAMES.get(method, f"unknown method 0x{method:02x}")
            raise ProxyError(f"The SOCKS proxy chose {name}, which was not offered ({offered})")
        self._chosen = method
        return 2

    def _parse_auth(self, buffer: bytes) -> int | None:
        # RFC 1929 says version 1; some proxies answer with SOCKS's own 5.
        if buffer[0] not in (AUTH_VERSION, VERSION):
            raise ProxyError(
                f"The SOCKS proxy's answer to the user name and password is not RFC 1929 "
                f"(version 0x{buffer[0]:02x})"
            )
        if len(buffer) < 2:
            return None
        if buffer[1] != 0x00:
            raise ProxyError(
                f"The SOCKS proxy rejected the user name and password (status 0x{buffer[1]:02x})"
            )
        return 2

    def _parse_reply(self, buffer: bytes) -> int | None:
        if buffer[0] != VERSION:
            raise ProxyError(f"The SOCKS proxy's CONNECT reply is not SOCKS5: {_describe_version(buffer)}")
        if len(buffer) < 2:
            return None
        code = buffer[1]
        if code != 0x00:
            reason = REPLY_MESSAGES.get(code, "unassigned reply code")
            raise SOCKSReplyError(
                f"The SOCKS proxy could not connect to {self._target}: {reason} (reply 0x{code:02x})", code
            )
        if len(buffer) < 5:
            return None
        atyp = buffer[3]
        length = ADDRESS_LENGTHS.get(atyp)
        if length is not None:
            total = 4 + length + 2
            start = 4
        elif atyp == ATYP_DOMAIN:
            total = 5 + buffer[4] + 2
            start = 5
        else:
            raise ProxyError(f"The SOCKS proxy's CONNECT reply has an unknown address type 0x{atyp:02x}")
        if len(buffer) >= total:
            raw = buffer[start : total - 2]
            host = raw.decode("ascii", "replace") if atyp == ATYP_DOMAIN else str(ipaddress.ip_address(raw))
            self.bound_address = (host, int.from_bytes(buffer[total - 2 : total], "big"))
        return total

    def __repr__(self) -> str:
        return f"<SOCKS5Handshake to {self._target} [{self._state.value}]>"
