"""The socket two sessions of one project share (the policy proxy's, the database relay's): the later one
serves, closing removes only one's own, and the earlier one binds it again once the later one has gone."""

from __future__ import annotations

import os
import socket
import stat
import time

from workbench.network import shared_socket
from workbench.network.shared_socket import SharedSocket

NAME = "test.sock"


def answering(tag: bytes):
    def handle(client: socket.socket) -> None:
        with client:
            client.sendall(tag)

    return handle


def ask(folder) -> bytes | None:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        try:
            client.connect(str(folder / NAME))
        except OSError:
            return None
        return client.recv(16)


def until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_later_session_serves_and_the_earlier_takes_over_when_it_ends(tmp_path):
    first = SharedSocket(tmp_path, NAME, answering(b"first"), thread_name="t-first").start()
    try:
        assert ask(tmp_path) == b"first"
        assert stat.S_IMODE(os.stat(tmp_path / NAME).st_mode) == 0o600
        second = SharedSocket(tmp_path, NAME, answering(b"second"), thread_name="t-second").start()
        assert ask(tmp_path) == b"second"
        second.close()
        # gone with the later session, then bound again by the earlier one within its watch period
        assert until(lambda: ask(tmp_path) == b"first", 10 * shared_socket.WATCH_SECONDS)
    finally:
        first.close()
    assert not (tmp_path / NAME).exists() and ask(tmp_path) is None


def test_closing_leaves_another_sessions_socket_in_place(tmp_path):
    first = SharedSocket(tmp_path, NAME, answering(b"first"), thread_name="t-first").start()
    second = SharedSocket(tmp_path, NAME, answering(b"second"), thread_name="t-second").start()
    try:
        first.close()  # the socket in the folder is the second's: it stays
        assert (tmp_path / NAME).exists() and ask(tmp_path) == b"second"
    finally:
        second.close()
    assert not (tmp_path / NAME).exists()


def test_the_socket_is_bound_in_the_folder_opened_even_if_its_path_is_swapped(tmp_path):
    """Bound through the folder's own descriptor: a folder renamed and replaced by a symlink elsewhere
    after the start does not move where a rebind lands."""
    folder, elsewhere = tmp_path / "sock", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    first = SharedSocket(folder, NAME, answering(b"first"), thread_name="t-first").start()
    try:
        moved = tmp_path / "moved"
        folder.rename(moved)
        folder.symlink_to(elsewhere)
        os.unlink(moved / NAME)  # as if a later session had ended: the watcher binds again
        assert until(lambda: (moved / NAME).exists(), 10 * shared_socket.WATCH_SECONDS)
        assert not (elsewhere / NAME).exists()
    finally:
        first.close()
