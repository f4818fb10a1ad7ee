"""The runner's wire protocol: tagged frames, per-connection keys, limits, the key file, the peer check."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from workbench.sandbox.container import protocol


def keyed_pair(key: bytes):
    """(client channel, server channel) over a socket pair, opened as the host and the runner open them."""
    ours, theirs = socket.socketpair()
    client = protocol.Channel.open(ours, key)
    kind, size = protocol.HEADER.unpack(protocol.recv_exact(theirs, protocol.HEADER.size))
    assert kind == b"N" and size == protocol.NONCE_SIZE
    return client, protocol.Channel(theirs, key, protocol.recv_exact(theirs, size), client=False)


def test_frames_of_each_kind_travel_both_ways_in_order():
    client, server = keyed_pair(os.urandom(32))
    client.send_json({"op": "exec", "code": "print(1)"})
    assert server.recv_object() == {"op": "exec", "code": "print(1)"}
    for kind, payload in ((b"O", b"out\n"), (b"E", bytes(range(256))), (b"J", b'{"done": true}')):
        server.send(kind, payload)
    assert [client.recv() for _ in range(3)] == [(b"O", b"out\n"), (b"E", bytes(range(256))),
                                                (b"J", b'{"done": true}')]


def test_a_replayed_or_reflected_frame_is_forged():
    key = os.urandom(32)
    client, server = keyed_pair(key)
    server.send(b"O", b"once\n")
    frame = protocol.recv_exact(client.sock, protocol.HEADER.size + 5 + protocol.TAG_SIZE)
    server.sock.sendall(frame + frame)  # the same genuine frame twice: the second has an old sequence number
    assert client.recv() == (b"O", b"once\n")
    with pytest.raises(protocol.Forged):
        client.recv()
    reflected_client, reflected_server = keyed_pair(key)
    reflected_client.send(b"J", b"{}")  # the client's own frame sent back to it: wrong direction
    raw = protocol.recv_exact(reflected_server.sock, protocol.HEADER.size + 2 + protocol.TAG_SIZE)
    reflected_server.sock.sendall(raw)
    with pytest.raises(protocol.Forged):
        reflected_client.recv()


def test_frames_over_the_limit_or_cut_short_end_the_connection():
    ours, theirs = socket.socketpair()
    theirs.sendall(struct.pack(">cI", b"O", 1 << 30))
    with pytest.raises(protocol.ProtocolError, match="over the limit"):
        protocol.recv_frame(ours, 1 << 20)
    ours, theirs = socket.socketpair()
    theirs.sendall(struct.pack(">cI", b"J", 10) + b"{}")
    theirs.close()
    with pytest.raises(protocol.ProtocolError, match="inside a frame"):
        protocol.recv_frame(ours)
    ours, theirs = socket.socketpair()
    theirs.close()
    with pytest.raises(EOFError):
        protocol.recv_frame(ours)
    for kind, payload, words in ((b"O", b"{}", "expected a JSON frame"), (b"J", b"{", "not JSON"),
                                 (b"J", b"[]", "not an object")):
        with pytest.raises(protocol.ProtocolError, match=words):
            protocol.json_object(kind, payload)


def test_the_key_file_is_taken_once_and_never_through_a_link(tmp_path):
    key = os.urandom(protocol.KEY_SIZE)
    (tmp_path / protocol.KEY_FILE).write_bytes(key)
    assert protocol.take_key(str(tmp_path)) == key
    assert not (tmp_path / protocol.KEY_FILE).exists()  # gone before any code could read it
    assert protocol.take_key(str(tmp_path)) is None
    (tmp_path / protocol.KEY_FILE).write_bytes(b"short")
    assert protocol.take_key(str(tmp_path)) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(os.urandom(protocol.KEY_SIZE))
    (tmp_path / protocol.KEY_FILE).symlink_to(elsewhere)
    assert protocol.take_key(str(tmp_path)) is None and elsewhere.exists()


def test_the_peer_is_named_by_the_kernel():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert protocol.peer_pid(ours) == os.getpid()
