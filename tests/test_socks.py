"""The sans-I/O SOCKS5 handshake (httpcore/_socks.py), fed bytes directly."""

from __future__ import annotations

import pytest

from httpcore import ProxyError
from httpcore._socks import (
    REPLY_MESSAGES,
    SOCKS5Handshake,
    SOCKSReplyError,
    encode_address,
    encode_credentials,
)

GRANTED_IPV4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90"  # bound to 127.0.0.1:8080
GRANTED_IPV6 = b"\x05\x00\x00\x04" + b"\x00" * 15 + b"\x01" + b"\x00\x50"
GRANTED_DOMAIN = b"\x05\x00\x00\x03\x09localhost\x00\x51"


def feed(handshake: SOCKS5Handshake, data: bytes, *, bytewise: bool) -> bytes:
    """Feed ``data`` whole or one byte at a time; returns everything the handshake sent back."""
    if not bytewise:
        return handshake.receive(data)
    sent = b""
    for index in range(len(data)):
        sent += handshake.receive(data[index : index + 1])
        if index < len(data) - 1:
            assert not handshake.done
    return sent


@pytest.mark.parametrize("bytewise", [False, True])
@pytest.mark.parametrize(
    ("reply", "bound"),
    [
        (GRANTED_IPV4, ("127.0.0.1", 8080)),
        (GRANTED_IPV6, ("::1", 80)),
        (GRANTED_DOMAIN, ("localhost", 81)),
    ],
)
def test_no_auth_connect(reply: bytes, bound: tuple[str, int], bytewise: bool) -> None:
    handshake = SOCKS5Handshake("example.com", 443)
    assert handshake.start() == b"\x05\x01\x00"
    request = feed(handshake, b"\x05\x00", bytewise=bytewise)
    assert request == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    assert not handshake.done
    assert feed(handshake, reply, bytewise=bytewise) == b""
    assert handshake.done
    assert handshake.bound_address == bound


@pytest.mark.parametrize("bytewise", [False, True])
def test_username_password(bytewise: bool) -> None:
    handshake = SOCKS5Handshake("10.1.2.3", 80, auth=("user", b"p\xc3\xa4ss"))
    assert handshake.start() == b"\x05\x02\x02\x00"
    auth = feed(handshake, b"\x05\x02", bytewise=bytewise)
    assert auth == b"\x01\x04user\x05p\xc3\xa4ss"
    request = feed(handshake, b"\x01\x00", bytewise=bytewise)
    assert request == b"\x05\x01\x00\x01\x0a\x01\x02\x03\x00\x50"
    feed(handshake, GRANTED_IPV4, bytewise=bytewise)
    assert handshake.done


def test_credentials_offered_but_proxy_needs_none() -> None:
    handshake = SOCKS5Handshake("::1", 8443, auth=("user", "secret"))
    handshake.start()
    request = handshake.receive(b"\x05\x00")
    assert request == b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x20\xfb"
    handshake.receive(GRANTED_IPV4)
    assert handshake.done


def test_auth_status_answered_with_socks_version() -> None:
    """Some proxies answer RFC 1929 with version 5 instead of 1: accepted."""
    handshake = SOCKS5Handshake("example.com", 80, auth=("u", "p"))
    handshake.start()
    handshake.receive(b"\x05\x02")
    assert handshake.receive(b"\x05\x00").startswith(b"\x05\x01\x00\x03")


def test_wrong_credentials() -> None:
    handshake = SOCKS5Handshake("example.com", 80, auth=("user", "hunter2"))
    handshake.start()
    handshake.receive(b"\x05\x02")
    with pytest.raises(ProxyError, match="rejected the user name and password") as info:
        handshake.receive(b"\x01\x01")
    assert "hunter2" not in str(info.value) and "user" not in str(info.value).split("user name")[0]
    assert "hunter2" not in repr(handshake)


@pytest.mark.parametrize("code", sorted(REPLY_MESSAGES))
@pytest.mark.parametrize("bytewise", [False, True])
def test_every_reply_code(code: int, bytewise: bool) -> None:
    handshake = SOCKS5Handshake("example.com", 8080)
    handshake.start()
    handshake.receive(b"\x05\x00")
    # Reported from the first two bytes: the proxy may close without the rest.
    with pytest.raises(SOCKSReplyError) as info:
        feed(handshake, bytes((0x05, code)), bytewise=bytewise)
    message = str(info.value)
    assert REPLY_MESSAGES[code] in message
    assert f"0x{code:02x}" in message
    assert "example.com:8080" in message
    assert info.value.reply_code == code
    assert info.value.address_failed == (code in {3, 4, 5, 6, 8})


def test_reply_messages_say_what_they_mean() -> None:
    assert REPLY_MESSAGES[0x05] == "connection refused by destination host"
    assert set(REPLY_MESSAGES) == set(range(1, 9))


def test_unassigned_reply_code() -> None:
    handshake = SOCKS5Handshake("::1", 80)
    handshake.start()
    handshake.receive(b"\x05\x00")
    with pytest.raises(SOCKSReplyError, match=r"unassigned reply code \(reply 0x2a\).*") as info:
        handshake.receive(b"\x05\x2a\x00\x01\x00\x00\x00\x00\x00\x00")
    assert "[::1]:80" in str(info.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"\x04\x5a", "not a SOCKS5 proxy: its answer starts with 0x04"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "answered in HTTP"),
        (b"H", "answered in HTTP"),
        (b"\x05\xff", "accepts none of the methods offered \\(no authentication\\); it may need"),
        (b"\x05\x02", "chose username and password, which was not offered"),
        (b"\x05\x01", "chose GSSAPI, which was not offered"),
        (b"\x05\x80", "chose unknown method 0x80"),
        (b"\x05\x00\x00", "1 unexpected bytes after its answer \\(method\\)"),
    ],
)
def test_bad_method_answers(answer: bytes, message: str) -> None:
    handshake = SOCKS5Handshake("example.com", 80)
    handshake.start()
    with pytest.raises(ProxyError, match=message):
        handshake.receive(answer)


def test_no_acceptable_method_with_credentials() -> None:
    handshake = SOCKS5Handshake("example.com", 80, auth=("u", "p"))
    handshake.start()
    with pytest.raises(
        ProxyError, match=r"none of the methods offered \(username and password or no auth"
    ) as info:
        handshake.receive(b"\x05\xff")
    assert "may need" not in str(info.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"\x02\x00", "not RFC 1929 \\(version 0x02\\)"),
        (b"\x01\x00GET", "3 unexpected bytes after its answer \\(auth\\)"),
    ],
)
def test_bad_auth_answers(answer: bytes, message: str) -> None:
    handshake = SOCKS5Handshake("example.com", 80, auth=("u", "p"))
    handshake.start()
    handshake.receive(b"\x05\x02")
    with pytest.raises(ProxyError, match=message):
        handshake.receive(answer)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"\x04\x00", "CONNECT reply is not SOCKS5: its answer starts with 0x04"),
        (b"\x05\x00\x00\x02\x00", "unknown address type 0x02"),
        (GRANTED_IPV4 + b"HTTP/1.1 200 OK\r\n", "17 unexpected bytes after its answer \\(reply\\)"),
    ],
)
def test_bad_connect_replies(answer: bytes, message: str) -> None:
    handshake = SOCKS5Handshake("example.com", 80)
    handshake.start()
    handshake.receive(b"\x05\x00")
    with pytest.raises(ProxyError, match=message):
        handshake.receive(answer)


def test_empty_input_and_partial_answers_wait() -> None:
    handshake = SOCKS5Handshake("example.com", 80)
    handshake.start()
    assert handshake.receive(b"") == b""
    assert handshake.receive(b"\x05") == b""
    assert handshake.receive(b"\x00").startswith(b"\x05\x01")
    for piece in (b"\x05\x00\x00", b"\x03", b"\x04ab", b"cd\x00"):
        assert handshake.receive(piece) == b""
        assert not handshake.done
    handshake.receive(b"\x01")
    assert handshake.done
    assert handshake.bound_address == ("abcd", 1)


def test_misuse_is_a_programming_error() -> None:
    handshake = SOCKS5Handshake("example.com", 80)
    with pytest.raises(RuntimeError, match="expects no data now \\(greeting\\)"):
        handshake.receive(b"\x05\x00")
    handshake.start()
    with pytest.raises(RuntimeError, match="already started"):
        handshake.start()
    handshake.receive(b"\x05\x00")
    handshake.receive(GRANTED_IPV4)
    with pytest.raises(RuntimeError, match="expects no data now \\(done\\)"):
        handshake.receive(b"x")


def test_repr_names_the_target_and_state_only() -> None:
    handshake = SOCKS5Handshake("example.com", 80, auth=("alice", "s3cret"))
    assert repr(handshake) == "<SOCKS5Handshake to example.com:80 [greeting]>"


@pytest.mark.parametrize(
    ("host", "port", "encoded"),
    [
        ("192.0.2.1", 1, b"\x01\xc0\x00\x02\x01\x00\x01"),
        ("2001:db8::1", 65535, b"\x04\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01\xff\xff"),
        ("a.example", 256, b"\x03\x09a.example\x01\x00"),
        ("x" * 255, 80, b"\x03\xff" + b"x" * 255 + b"\x00\x50"),
    ],
)
def test_encode_address(host: str, port: int, encoded: bytes) -> None:
    assert encode_address(host, port) == encoded


@pytest.mark.parametrize(
    ("host", "message"), [("x" * 256, "1 to 255 bytes long, not 256"), ("", "not 0"), ("bü.de", "not ASCII")]
)
def test_encode_address_refuses(host: str, message: str) -> None:
    with pytest.raises(ProxyError, match=message):
        encode_address(host, 80)


def test_credentials_limits() -> None:
    assert encode_credentials("u" * 255, b"") == (b"u" * 255, b"")
    with pytest.raises(
        ProxyError, match="user name is 256 bytes long; SOCKS5 \\(RFC 1929\\) allows at most 255"
    ) as info:
        encode_credentials("u" * 256, "p")
    assert "uuu" not in str(info.value)
    with pytest.raises(ProxyError, match="password is 256 bytes long"):
        SOCKS5Handshake("example.com", 80, auth=("u", "\u00e9" * 128))
    with pytest.raises(TypeError, match="password must be str or bytes, not int"):
        encode_credentials("u", 1)  # type: ignore[arg-type]


def test_closed_error_says_when() -> None:
    handshake = SOCKS5Handshake("example.com", 80)
    assert str(handshake.closed_error()) == "The SOCKS proxy closed the connection unexpectedly"
    handshake.start()
    assert str(handshake.closed_error()).endswith(
        "before choosing an authentication method; it may need a user name and password"
    )
    handshake.receive(b"\x05\x00")
    assert str(handshake.closed_error()).endswith("before answering the CONNECT request")
    with_auth = SOCKS5Handshake("example.com", 80, auth=("u", "secret"))
    with_auth.start()
    assert str(with_auth.closed_error()).endswith("before choosing an authentication method")
    with_auth.receive(b"\x05\x02")
    message = str(with_auth.closed_error())
    assert message.endswith("(most likely it rejected them)")
    assert "secret" not in message


def test_retarget_before_the_request_is_sent() -> None:
    handshake = SOCKS5Handshake("origin.example", 8080)
    with pytest.raises(RuntimeError, match="retargeted"):
        handshake.retarget("127.0.0.1")
    handshake.start()
    assert not handshake.requesting
    request = handshake.receive(b"\x05\x00")
    assert handshake.requesting and request.endswith(b"origin.example\x1f\x90")
    assert handshake.retarget("127.0.0.1") == b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90"
    assert "127.0.0.1:8080" in repr(handshake)
