"""What we change in h2 and peek at inside it (``httpcore/_h2_shortcuts.py``), driven
through h2 directly against an h2 server connection: each test fails if a new h2 moves
the private detail it stands on (the fallbacks would then quietly do less)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import hyperframe.frame

from httpcore import _h2_shortcuts
from httpcore._h2_shortcuts import H2Connection, has_output, header_fragments_size, unparsed


def pair() -> tuple[H2Connection, h2.connection.H2Connection]:
    """Our client connection and an h2 server, past the connection preface."""
    client = H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.data_to_send()
    return client, server


def request(client: H2Connection, stream_id: int) -> None:
    client.send_headers(
        stream_id, [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]
    )


def test_the_private_details_are_where_we_look() -> None:
    assert _h2_shortcuts._transitions is not None
    assert hasattr(h2.connection.H2Connection, "_open_streams")
    client, _ = pair()
    assert isinstance(client._data_to_send, bytearray | bytes)
    assert isinstance(client.incoming_buffer._data, bytearray | bytes)
    assert isinstance(client.incoming_buffer._headers_buffer, list)


def test_a_goaway_leaves_the_connection_open_and_keeps_what_is_queued() -> None:
    client, server = pair()
    request(client, 1)
    server.receive_data(client.data_to_send())
    client.ping(b"12345678")  # queued, not yet taken
    server.close_connection(last_stream_id=1)
    events = client.receive_data(server.data_to_send())
    assert [type(event) for event in events] == [h2.events.ConnectionTerminated]
    assert client.state_machine.state is h2.connection.ConnectionState.CLIENT_OPEN
    assert b"12345678" in client.data_to_send()  # h2 would have dropped it
    # Stream 1, which the server kept, can still be answered.
    server.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    events = client.receive_data(server.data_to_send())
    assert h2.events.ResponseReceived in [type(event) for event in events]


def test_has_output() -> None:
    client, _ = pair()
    assert not has_output(client)
    client.ping(b"abcdefgh")
    assert has_output(client)
    client.data_to_send()
    assert not has_output(client)


def test_unparsed_and_header_fragments() -> None:
    client, _ = pair()
    request(client, 1)
    assert unparsed(client) == b""
    assert header_fragments_size(client) == 0
    head = hyperframe.frame.HeadersFrame(1, data=b"\x88" * 10).serialize()  # no END_HEADERS
    client.receive_data(head + b"\x00\x00\x64\x09")  # and 4 bytes of a CONTINUATION's header
    assert unparsed(client) == b"\x00\x00\x64\x09"
    assert header_fragments_size(client) == 10


def test_open_streams_are_counted_only_now_and_then() -> None:
    client, server = pair()
    for index in range(70):
        request(client, 2 * index + 1)
    assert len(client.streams) == 70
    assert client._sweep_at == 2 * 64 + 64  # counted once, at the 64th stream
    assert client.open_outbound_streams == 0  # under the next sweep: not counted
    server.receive_data(client.data_to_send())
    for index in range(60):  # 60 answered and ended: closed on both sides
        server.send_headers(2 * index + 1, [(b":status", b"204")], end_stream=True)
    client.receive_data(server.data_to_send())
    for index in range(60):
        client.end_stream(2 * index + 1)
    client._sweep_at = 0
    assert client.open_outbound_streams == 10  # h2's own walk, which forgets closed streams
    assert len(client.streams) == 10
