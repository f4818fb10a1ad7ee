"""A Unix socket in a host folder that the sessions of one project share: the policy proxy's and the
database relay's.

Two sessions of one project (the TUI and a `workbench exec`) serve the same socket path, because a warm
container outlives the process that made it and its mount names the folder, not a process. The later
session binds the socket (replacing an earlier one's); when it ends it removes only its own (by inode), and
the earlier session, which checks every `WATCH_SECONDS`, binds it again. The path is always reached through
the folder's own file descriptor (`/proc/self/fd/N/NAME`), so a long or swapped path never redirects the
bind, and the socket is made the owner's (rootless: the container's user) and 0600.

Each accepted connection goes to `handle(client)` on the accept thread: a handler that takes long hands the
connection to a thread of its own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.5  # how soon a session binds the socket again after another session of the project removed it
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SharedSocket:
    def __init__(self, folder: Path, name: str, handle: Callable[[socket.socket], None],
                 owner: tuple[int, int] | None = None, thread_name: str = "shared-socket"):
        self.folder, self.name, self.handle, self.owner = folder, name, handle, owner
        self.thread_name = thread_name
        self.listener: socket.socket | None = None
        self.inode: int | None = None  # our socket's, so that closing never removes another session's
        self._dir_fd: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # binding never runs while close() closes the folder's fd

    def start(self) -> SharedSocket:
        self._dir_fd = os.open(self.folder, _DIR_FLAGS)
        try:
            os.unlink(self.name, dir_fd=self._dir_fd)  # an earlier session's (another live one's is replaced)
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(self._dir_fd)
            self._dir_fd = None
            raise
        try:
            self._bind()
        except BaseException:
            self.close()
            raise
        threading.Thread(target=self._watch, name=f"{self.thread_name}-watch", daemon=True).start()
        return self

    def _path(self) -> str:
        return f"/proc/self/fd/{self._dir_fd}/{self.name}"

    def _bind(self) -> None:
        with self._lock:  # the fd's number could be reused once close() has closed it
            if self._stopping.is_set() or self._dir_fd is None:
                return
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                listener.bind(self._path())
                if self.owner is not None:
                    os.chown(self.name, *self.owner, dir_fd=self._dir_fd, follow_symlinks=False)
                os.chmod(self._path(), 0o600)
                listener.listen(64)
                self.inode = os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False).st_ino
            except BaseException:
                listener.close()
                raise
            old, self.listener = self.listener, listener
        if old is not None:
            old.close()
        threading.Thread(target=self._accept, args=(listener,), name=self.thread_name, daemon=True).start()

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            with self._lock:
                if self._dir_fd is None:
                    return
                try:
                    os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False)
                    continue
                except FileNotFoundError:
                    pass
                except OSError:
                    return
            try:
                self._bind()
            except OSError as exc:  # another session bound it first: that one serves
                log.debug("%s: could not bind %s again: %s", self.thread_name, self.name, exc)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:  # closed: this session ended, or bound the socket again
                return
            self.handle(client)

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            listener, self.listener = self.listener, None
            if self._dir_fd is not None:
                try:  # only our own socket: a later session of this project may have bound its own since
                    if os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False).st_ino == self.inode:
                        os.unlink(self.name, dir_fd=self._dir_fd)
                except OSError:
                    pass
                os.close(self._dir_fd)
                self._dir_fd = None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
