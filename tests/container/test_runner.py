"""The runner on its own: its modules import as the container imports them, a connection is handled by
the protocol (nonce first, replay refused, ops answered), it refuses to serve without a key, and its sweep
spares exactly the interpreters and a running cell's process tree."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from workbench.sandbox.container import interpreters, protocol, runner


def test_the_installed_runner_imports_its_modules_by_their_bare_names(installed):
    """As in the container (python3 /opt/workbench/runner.py), and as a stand-in runner imports it."""
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import runner; "
             "print(runner.Channel.__module__, runner.Kernel.__module__, callable(runner.take_key), "
             "callable(runner.recv_exact), runner.GRACE)")
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(installed)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["protocol", "interpreters", "True", "True", str(protocol.GRACE)]


def test_it_refuses_to_serve_without_a_session_key(installed, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    done = subprocess.run([sys.executable, str(installed / "runner.py"), "--serve", str(folder / "runner.sock")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no session key" in done.stderr
    assert not (folder / "runner.sock").exists()  # it never listened


@pytest.fixture
def server(tmp_path):
    key = os.urandom(protocol.KEY_SIZE)
    return runner.Server(str(tmp_path / "runner.sock"), 60.0, threading.Event(), key), key


def handled(server, send) -> bytes:
    """Run one connection through `Server.handle`; `send(client_socket)` talks; what the server sent back."""
    ours, theirs = socket.socketpair()
    worker = threading.Thread(target=server.handle, args=(theirs,), daemon=True)
    worker.start()
    try:
        send(ours)
    except (BrokenPipeError, ConnectionResetError):  # it hung up before we finished: what a refusal may look like
        pass
    finally:
        worker.join(15)
    ours.settimeout(5)
    rest = b""
    while True:
        try:
            part = ours.recv(65536)
        except ConnectionResetError:  # it hung up with our bytes unread
            part = b""
        if not part:
            return rest
        rest += part


def test_a_connection_is_keyed_and_its_ops_answered(server):
    box, key = server
    answers = {}

    def ask(op):
        def talk(sock):
            channel = protocol.Channel.open(sock, key)
            channel.send_json({"op": op})
            answers[op] = channel.recv_object()
        return talk

    for op in ("ping", "list", "bogus"):
        handled(box, ask(op))
    assert answers["ping"] == {"pong": True, "pid": os.getpid()}
    assert answers["list"] == {"sessions": []}
    assert "unknown op" in answers["bogus"]["error"]
    assert box.busy == 0


def test_a_replayed_nonce_or_a_missing_one_gets_nothing(server):
    box, key = server
    nonce = os.urandom(protocol.NONCE_SIZE)

    def with_nonce(sock):
        sock.sendall(protocol.HEADER.pack(b"N", protocol.NONCE_SIZE) + nonce)
        protocol.Channel(sock, key, nonce, client=True).send_json({"op": "ping"})

    assert handled(box, with_nonce) != b""  # the first time: answered
    assert handled(box, with_nonce) == b""  # the same nonce again: hung up on, unanswered
    assert handled(box, lambda sock: protocol.send_json(sock, {"op": "ping"})) == b""  # no nonce first

    def wrong_key(sock):
        protocol.Channel.open(sock, os.urandom(32)).send_json({"op": "ping"})

    assert handled(box, wrong_key) == b""


def test_the_sweep_spares_the_interpreters_and_a_running_cells_tree():
    idle = SimpleNamespace(alive=True, running=False, proc=SimpleNamespace(pid=10))
    busy = SimpleNamespace(alive=True, running=True, proc=SimpleNamespace(pid=20))
    dead = SimpleNamespace(alive=False, running=False, proc=SimpleNamespace(pid=30))
    table = {10: (1, 10, "S"), 11: (10, 11, "S"),  # the idle interpreter, and what its last cell left
             20: (1, 20, "S"), 21: (20, 20, "R"), 22: (21, 22, "S"), 23: (1, 20, "S"),  # the cell's tree
             30: (1, 30, "Z"), 40: (1, 40, "S")}  # a dead interpreter, a stray
    spare = interpreters.spared([idle, busy, dead], table)
    assert {10, 20, 21, 22, 23} <= spare
    assert not spare & {11, 30, 40}


def test_the_process_table_shows_this_process():
    table = interpreters.process_table()
    assert table[os.getpid()][0] == os.getppid()
