"""The TUI's side: answer approval requests while open, one at a time (`workbench.approvals`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workbench.approvals.wire import (
    LOCK_NAME,
    MAX_REQUEST,
    READ_TIMEOUT,
    RETRY_LOCK,
    SOCKET_NAME,
    Request,
    Unsafe,
    folder,
    peer_uid,
    read_line,
)
from workbench.inert import one_line

Decide = Callable[[Request, threading.Event], "bool | None"]


class Listener:
    """Answers approval requests for the project at `root` while it runs. `decide(request, gone)` blocks
    until the person answers (True/False), or returns None when it cannot ask; `gone` is set when the
    requester stops waiting (its timeout), so the dialog can go. Requests are asked one at a time."""

    def __init__(self, root: Path, decide: Decide, user: str,
                 on_state: Callable[[str], None] = lambda _: None) -> None:
        self.root, self.decide, self.user, self.on_state = Path(root), decide, user, on_state
        self.state = "starting"  # listening | elsewhere (another TUI listens) | off: <why> | closed
        self.closed = threading.Event()
        self._one = threading.Lock()
        self._lock_fd: int | None = None
        self._server: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="approvals-listener", daemon=True)
        self._thread.start()

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    def _run(self) -> None:
        try:
            while not self.closed.is_set():
                if self._take_lock():
                    self._bind()
                    self._set("listening")
                    self._serve()
                    return
                self._set("elsewhere")
                self.closed.wait(RETRY_LOCK)
        except (OSError, Unsafe) as exc:
            self._set(f"off: {one_line(exc)[:200]}")
        finally:
            self._release()

    def _take_lock(self) -> bool:
        """The project's listener lock, without waiting. The holder removes the lock file (and the folder)
        when it closes, so a lock taken on a file that is no longer at its name does not count."""
        path = folder(self.root) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held, current = os.fstat(fd), os.lstat(path)
            if (held.st_dev, held.st_ino) != (current.st_dev, current.st_ino):
                raise BlockingIOError  # the previous holder removed it meanwhile: try again with the new one
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _bind(self) -> None:
        path = folder(self.root) / SOCKET_NAME
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a dead TUI's socket, or anything else: only we can write in this folder
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        if len(str(path).encode()) >= 100:
            raise OSError(errno.ENAMETOOLONG, f"the approvals socket path is too long ({path})")
        server.bind(str(path))
        os.chmod(path, 0o600, follow_symlinks=False)
        st = os.lstat(path)
        self._inode = (st.st_dev, st.st_ino)
        server.listen(8)
        server.settimeout(0.5)
        self._server = server

    def _serve(self) -> None:
        assert self._server is not None
        while not self.closed.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.closed.is_set():
                    return
                raise
            threading.Thread(target=self._answer, args=(conn,), name="approvals-request", daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        gone = threading.Event()
        with conn:
            try:
                if peer_uid(conn) != os.getuid():
                    return  # another user: not a word back
                raw = read_line(conn, MAX_REQUEST, time.monotonic() + READ_TIMEOUT)
                if raw is None:
                    return
                try:
                    request = Request.decode(raw)
                except (ValueError, TypeError, UnicodeDecodeError) as exc:
                    conn.sendall(json.dumps({"error": one_line(exc)[:300]}).encode() + b"\n")
                    return
                watcher = threading.Thread(target=self._watch, args=(conn, gone), daemon=True)
                watcher.start()
                with self._one:  # one dialog at a time; a request whose asker left meanwhile is not shown
                    # Looked at now, not only by the watcher's poll: an asker that gave up while the
                    # previous dialog was up may have hung up a moment ago, before the watcher's next look.
                    if gone.is_set() or self.closed.is_set() or _hung_up(conn):
                        return
                    try:
                        approved = self.decide(request, gone)
                    except Exception:  # the TUI could not show it (closing): the requester hears no yes
                        approved = None
                if approved is None or gone.is_set():
                    if approved is None and not gone.is_set():
                        conn.sendall(json.dumps({"error": "the TUI could not ask (it is closing)"}).encode() + b"\n")
                    return
                conn.sendall(json.dumps({"id": request.id, "approved": bool(approved), "by": self.user}).encode()
                             + b"\n")
            except OSError:
                return
            finally:
                gone.set()  # ends the watcher

    def _watch(self, conn: socket.socket, gone: threading.Event) -> None:
        """Set `gone` when the requester hangs up (it sends nothing more: readable means closed)."""
        while not gone.is_set() and not self.closed.is_set():
            try:
                readable, _, _ = select.select([conn], [], [], 0.2)
                if readable:
                    if not conn.recv(1, socket.MSG_PEEK):
                        break
                    time.sleep(0.2)  # it sent more than its request: ignored, not a busy loop
            except (OSError, ValueError):
                break
        gone.set()

    def close(self) -> None:
        self.closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._release()
        self._set("closed")

    def _release(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(OSError, Unsafe):
                path = folder(self.root, create=False) / SOCKET_NAME
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == self._inode:  # only our own socket, never a successor's
                    os.unlink(path)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError, Unsafe):  # tidy: nothing of this project's listener stays
                where = folder(self.root, create=False)
                os.unlink(where / LOCK_NAME)  # still holding it: whoever takes it next makes a new one
                with contextlib.suppress(OSError):
                    os.rmdir(where)  # empty unless a successor is already setting up
            os.close(fd)


def _hung_up(conn: socket.socket) -> bool:
    """Whether the requester has closed its end (readable with nothing to read), without waiting."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and not conn.recv(1, socket.MSG_PEEK)
    except (OSError, ValueError):
        return True
