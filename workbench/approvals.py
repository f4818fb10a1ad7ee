"""Approvals across processes: another process of the same user (the MCP server now) asks the open TUI.

    listener = Listener(project.root, decide)   # the TUI, while it is open: decide(request, gone) -> bool | None
    listener.start(); ...; listener.close()
    decision = ask(project.root, Request("execute", client="claude", language="python", code=...), timeout=120)

Where: one private folder per project, `$XDG_RUNTIME_DIR/workbench/appr-<hash of the project path>/` (else
`$TMPDIR` or /tmp `/workbench-<uid>/...`), 0700 and ours; it holds `lock` and the socket `sock` (0600).

Who listens: only one TUI per project, the one holding `lock` (flock). A second TUI of the same project
does not listen; it retries the lock every few seconds and takes over when the first one closes. So the
question is asked in exactly one place, and never twice.

What a requester trusts, checked without following links: the folder is a real folder, ours, 0700; the
socket is a socket and ours (a symlink, a file, a folder open to others is refused and never connected
to); the listener's uid from the kernel (SO_PEERCRED) is ours. A socket left by a TUI that died answers
"connection refused": that is "no TUI open", at once. The listener checks the requester's uid the same
way. The same uid is the boundary: sandboxed code never sees this folder (it is outside the project and
never mounted).

A request cannot approve itself: it is a closed set of typed fields (an unknown field, such as an
`approved` key, gets the request refused), and the answer comes only from `decide`, which the TUI backs
with its approval dialog. Everything in a request is untrusted text: the TUI shows it through
`workbench.inert`. Nothing here imports Textual.

Wire: one JSON line each way (the request; then the answer `{"id", "approved", "by"}` or `{"error"}`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import select
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.inert import one_line

KINDS = ("execute", "install", "write_file", "export_report")
DEFAULT_TIMEOUT = 120.0  # seconds a requester waits for the person at the TUI
MAX_REQUEST = 16 * 1024 * 1024  # bytes: a request carries the code (the MCP reply limit is far below)
READ_TIMEOUT = 10.0  # seconds a listener waits for a connected requester to send its request
RETRY_LOCK = 2.0  # seconds between a second TUI's tries to become the listener
SOCKET_NAME, LOCK_NAME = "sock", "lock"


class Unsafe(Exception):
    """The folder or socket is not one Workbench made for this user (planted, a link, open to others)."""


# --- what is asked and what comes back -------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What another process wants to do, in its own words (all untrusted): `what` is one of KINDS."""

    what: str
    client: str = ""
    language: str = ""
    code: str = ""
    manager: str = ""
    packages: tuple[str, ...] = ()
    path: str = ""
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self) -> None:
        if self.what not in KINDS:
            raise ValueError(f"unknown request {self.what!r}: one of {', '.join(KINDS)}")

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def decode(cls, raw: bytes) -> Request:
        """A request from its wire form; ValueError for anything but exactly the typed fields."""
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("a request is a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown fields in the request: {', '.join(sorted(map(one_line, extra)))}")
        for name in known - {"packages"}:
            if name in data and not isinstance(data[name], str):
                raise ValueError(f"{name} must be a string")
        packages = data.get("packages", [])
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise ValueError("packages must be a list of strings")
        return cls(**{**data, "packages": tuple(packages)})

    def action(self) -> dict[str, Any]:
        """What the approval dialog shows, in the shape of the agent's own actions."""
        if self.what == "execute":
            return {"action": "run_code", "language": self.language, "code": self.code}
        if self.what == "install":
            return {"action": "install", "manager": self.manager, "packages": list(self.packages)}
        return {"action": self.what, "path": self.path}

    def details(self) -> dict[str, Any]:
        """What the audit record keeps of it (the code itself is in the exec events; here its digest)."""
        if self.what == "execute":
            return {"language": self.language,
                    "code_sha256": hashlib.sha256(self.code.encode("utf-8", "surrogatepass")).hexdigest()}
        if self.what == "install":
            return {"manager": self.manager, "packages": list(self.packages)}
        return {"path": self.path}


@dataclass(frozen=True)
class Decision:
    """`outcome`: approved, refused (the person said no), no-tui, timeout, unsafe or error. `by` is the
    TUI's `user:<login>` when a person answered. `reason` says in one line why it is not approved."""

    outcome: str
    by: str = ""
    reason: str = ""
    waited: float = 0.0

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


# --- the private folder -------------------------------------------------------------------------------
def _check_private(path: Path, what: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise Unsafe(f"{path} is not a folder (a link or a file is in the way of the {what})")
    if st.st_uid != os.getuid():
        raise Unsafe(f"{path} belongs to uid {st.st_uid}, not to you: someone else made the {what}")
    if st.st_mode & 0o077:
        raise Unsafe(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}): not a private {what}")


def _private(path: Path, what: str, create: bool) -> Path:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    _check_private(path, what)
    return path


def base(create: bool = True) -> Path:
    """The user's runtime folder for Workbench when it is ours and private, else one in the temp folder."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    usable = False
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
            usable = st.st_uid == os.getuid() and not st.st_mode & 0o077
        except OSError:
            pass
    if usable:
        return _private(Path(xdg) / "workbench", "runtime folder", create)
    tmp = os.environ.get("TMPDIR", "")
    return _private(Path(tmp if os.path.isabs(tmp) else "/tmp") / f"workbench-{os.getuid()}",
                    "runtime folder", create)


def folder(root: Path, create: bool = True) -> Path:
    """The project's approvals folder (FileNotFoundError when `create` is False and there is none)."""
    name = "appr-" + hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return _private(base(create) / name, "approvals folder", create)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end, from the kernel."""
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         struct.calcsize("3i")))
    return uid


def _read_line(sock: socket.socket, limit: int, deadline: float) -> bytes | None:
    """One line (without its newline) before `deadline`; None when the other end closed or time ran out."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(min(left, 0.5))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return None
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ValueError(f"a request over {limit} bytes")


# --- the requester ---------------------------------------------------------------------------------------
def ask(root: Path, request: Request, timeout: float = DEFAULT_TIMEOUT) -> Decision:
    """Ask the open TUI of the project at `root`, waiting at most `timeout` seconds. Never raises."""
    started = time.monotonic()

    def done(outcome: str, reason: str, by: str = "") -> Decision:
        return Decision(outcome, by, reason, round(time.monotonic() - started, 3))

    try:
        where = folder(root, create=False)
    except FileNotFoundError:
        return done("no-tui", "no Workbench TUI is open for this project")
    except Unsafe as exc:
        return done("unsafe", f"approvals folder refused: {exc}")
    path = where / SOCKET_NAME
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return done("no-tui", "no Workbench TUI is open for this project")
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return done("unsafe", f"{path} is not a socket a Workbench TUI of yours made (a link or a planted file): "
                              "ignored")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(2.0)
        try:
            # A name already checked above; connecting with O_NOFOLLOW is not possible, so the check repeats
            # on the connection itself: the listener's uid from the kernel.
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return done("no-tui", "no Workbench TUI is open for this project (a closed one left its socket)")
        except OSError as exc:
            return done("no-tui", f"no Workbench TUI answers for this project ({exc.strerror or exc})")
        if peer_uid(sock) != os.getuid():
            return done("unsafe", "the process listening for approvals is not yours: ignored")
        sock.sendall(request.encode())
        line = _read_line(sock, 64 * 1024, started + timeout)
        if line is None:
            if time.monotonic() - started >= timeout:
                return done("timeout", f"no answer from the Workbench TUI within {timeout:g} s")
            return done("error", "the Workbench TUI closed before it answered")
        answer = json.loads(line.decode("utf-8"))
        if not isinstance(answer, dict):
            return done("error", "the Workbench TUI's answer is not a JSON object")
        if answer.get("error"):
            return done("error", f"the Workbench TUI refused the request: {one_line(answer['error'])[:300]}")
        if answer.get("id") != request.id or not isinstance(answer.get("approved"), bool):
            return done("error", "the Workbench TUI's answer does not match the request")
        by = one_line(answer.get("by", ""))[:120]
        if answer["approved"]:
            return done("approved", "", by)
        return done("refused", f"{by or 'the user'} said no in the Workbench TUI", by)
    except (OSError, ValueError) as exc:
        return done("error", f"asking the Workbench TUI failed: {one_line(exc)[:300]}")
    finally:
        sock.close()


# --- the listener (the TUI's side) ----------------------------------------------------------------------
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
        where = folder(self.root)
        fd = os.open(where / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
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
                raw = _read_line(conn, MAX_REQUEST, time.monotonic() + READ_TIMEOUT)
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
                    if gone.is_set() or self.closed.is_set():
                        return
                    approved = self.decide(request, gone)
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
            os.close(fd)
