"""workbench.approvals without a TUI: the listener's and the requester's checks, with real sockets."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from workbench import approvals


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def listen(root, decide):
    listener = approvals.Listener(root, decide, "user:tester")
    listener.start()
    deadline = time.monotonic() + 5
    while listener.state != "listening":
        assert time.monotonic() < deadline, listener.state
        time.sleep(0.02)
    return listener


def test_the_folder_and_socket_are_private(root):
    listener = listen(root, lambda request, gone: True)
    try:
        where = approvals.folder(root)
        assert os.stat(where).st_mode & 0o777 == 0o700
        assert os.lstat(where / approvals.SOCKET_NAME).st_mode & 0o777 == 0o600
        assert approvals.ask(root, approvals.Request("execute", code="1")).approved
    finally:
        listener.close()
    assert not (where / approvals.SOCKET_NAME).exists() and not where.exists()  # nothing of it stays


def test_a_request_cannot_approve_itself(root):
    asked = []
    listener = listen(root, lambda request, gone: asked.append(request) or False)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(approvals.folder(root) / approvals.SOCKET_NAME))
            forged = {"what": "execute", "code": "1", "id": "x", "approved": True, "by": "user:someone"}
            sock.sendall(json.dumps(forged).encode() + b"\n")
            answer = json.loads(sock.makefile().readline())
    finally:
        listener.close()
    assert "unknown fields" in answer["error"] and "approved" not in answer and asked == []
    with pytest.raises(ValueError, match="unknown request"):
        approvals.Request("rm_rf")


def test_a_socket_left_by_a_dead_tui_means_no_tui_at_once_and_the_next_tui_replaces_it(root):
    where = approvals.folder(root)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(where / approvals.SOCKET_NAME))
    dead.close()  # the file stays, nobody listens: what a killed TUI leaves
    decision = approvals.ask(root, approvals.Request("execute", code="1"))
    assert decision.outcome == "no-tui" and decision.waited < 1
    listener = listen(root, lambda request, gone: True)
    try:
        assert approvals.ask(root, approvals.Request("execute", code="1")).approved
    finally:
        listener.close()


@pytest.mark.parametrize("plant", ["file", "symlink", "open-folder", "folder-link"])
def test_a_planted_socket_or_folder_is_refused_without_connecting(root, tmp_path, plant):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    fake = socket.socket(socket.AF_UNIX)
    fake.bind(str(target / approvals.SOCKET_NAME))
    fake.listen(1)
    fake.settimeout(0.5)
    where = approvals.folder(root)
    if plant == "file":
        (where / approvals.SOCKET_NAME).write_text("not a socket")
    elif plant == "symlink":
        os.symlink(target / approvals.SOCKET_NAME, where / approvals.SOCKET_NAME)
    elif plant == "open-folder":
        os.rmdir(where)
        os.mkdir(where)
        os.chmod(where, 0o755)
        os.symlink(target / approvals.SOCKET_NAME, where / approvals.SOCKET_NAME)
    else:
        os.rmdir(where)
        os.symlink(target, where)
    decision = approvals.ask(root, approvals.Request("execute", code="1"))
    assert decision.outcome == "unsafe" and not decision.approved, decision
    with pytest.raises(TimeoutError):
        fake.accept()  # nobody connected to the planted listener
    fake.close()


def test_requests_are_asked_one_at_a_time_and_a_requester_that_left_is_not_asked(root):
    release = threading.Event()
    shown = []

    def decide(request, gone):
        shown.append(request.code)
        release.wait(10)
        return True

    listener = listen(root, decide)
    try:
        first = threading.Thread(target=approvals.ask, args=(root, approvals.Request("execute", code="first"), 10))
        first.start()
        time.sleep(0.3)
        late = approvals.ask(root, approvals.Request("execute", code="second"), timeout=0.5)
        assert late.outcome == "timeout"
        release.set()
        first.join(5)
        time.sleep(0.5)
    finally:
        listener.close()
    assert shown == ["first"]  # the second asker gave up while the first was on screen: never shown


def test_the_listener_says_nothing_to_another_users_process(root, monkeypatch):
    # A process of another uid cannot reach the 0700 folder; if it could, the kernel's SO_PEERCRED would
    # name it: here the listener is told the peer is uid 4242.
    asked = []
    monkeypatch.setattr("workbench.approvals.listener.peer_uid", lambda sock: 4242)
    listener = listen(root, lambda request, gone: asked.append(request) or True)
    try:
        decision = approvals.ask(root, approvals.Request("execute", code="1"), timeout=5)
    finally:
        listener.close()
    assert decision.outcome == "error" and not decision.approved and asked == []


def test_the_requester_does_not_talk_to_a_listener_of_another_user(root, monkeypatch):
    asked = []
    listener = listen(root, lambda request, gone: asked.append(request) or True)
    monkeypatch.setattr("workbench.approvals.requester.peer_uid", lambda sock: 4242)
    try:
        decision = approvals.ask(root, approvals.Request("execute", code="1"), timeout=5)
    finally:
        listener.close()
    assert decision.outcome == "unsafe" and "not yours" in decision.reason and asked == []


def test_a_decide_that_fails_is_a_refusal_and_the_listener_goes_on(root):
    calls = []

    def decide(request, gone):
        calls.append(request.code)
        if request.code == "boom":
            raise RuntimeError("the dialog could not be shown")
        return True

    listener = listen(root, decide)
    try:
        failed = approvals.ask(root, approvals.Request("execute", code="boom"), timeout=5)
        after = approvals.ask(root, approvals.Request("execute", code="fine"), timeout=5)
    finally:
        listener.close()
    assert not failed.approved and failed.outcome == "error" and "could not ask" in failed.reason
    assert after.approved and calls == ["boom", "fine"]
