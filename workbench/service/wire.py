"""What the command line and the sandbox service share: frames, the private runtime folder, who may talk.

Standard library only, and only modules Python has loaded at startup anyway (plus `hashlib`): the client
imports this before anything else of Workbench.

Frames are one kind byte, a 4-byte big-endian length and the payload. The client sends one request
(`R`, JSON) and may later send a cancel (`C`); the service answers `A` (accepted: from here on the call has
effects, so the client must not run it again), then output (`O` stdout, `E` stderr, raw bytes; `S` a line
Workbench itself writes, already made visible), then `X` (JSON: the exit code and, for a failure, the
one-line error). Before `A` it may instead answer `F` (run it in-process: a restricted project, say) or `T`
(stale: this service is ending; start a fresh one).

The folder holding the socket is `$XDG_RUNTIME_DIR/workbench/svc-<hash of the project path>/` (else
`$TMPDIR` or /tmp `/workbench-<uid>/...`), 0700 and ours, checked without following links: a folder or
socket someone else made is refused, and the command runs in-process instead. Both ends check the other's
uid from the kernel (SO_PEERCRED).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">cI")
MAX_FRAME = 256 * 1024 * 1024  # a request carries the code; the in-process path takes any size too
SOCKET_NAME = "sock"
LOG_NAME = "service.log"
LOCK_NAME = "lock"
PID_NAME = "pid"

# The environment a service was started with must be the caller's: the settings read WORKBENCH_*, the
# engine DOCKER_*/CONTAINER_*, the keyring DBUS_*/KEYRING*, the actor LOGNAME/USER. A call whose
# environment differs from the service's replaces it.
ENV_NAMES = ("HOME", "USER", "LOGNAME", "LNAME", "USERNAME", "PATH", "TMPDIR", "TZ", "LANG", "LC_ALL",
             "LC_CTYPE", "CI", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PYTHONPATH")
ENV_PREFIXES = ("WORKBENCH_", "XDG_", "DOCKER_", "CONTAINER", "KEYRING", "PYTHON_KEYRING", "DBUS_")


class Unusable(Exception):
    """The service cannot be used for this call (one line why); the command runs in-process."""


class Frames:
    """Framed reads and writes on a connected socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        self.sock.sendall(HEADER.pack(kind, len(payload)) + payload)

    def send_json(self, kind: bytes, value: Any) -> None:
        self.send(kind, json.dumps(value).encode())

    def recv(self) -> tuple[bytes, bytes] | None:
        """The next frame, or None at a clean end of stream between frames. EOFError when cut short."""
        head = self._exactly(HEADER.size, eof_ok=True)
        if head is None:
            return None
        kind, size = HEADER.unpack(head)
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes is over the limit")
        return kind, self._exactly(size) or b""

    def _exactly(self, size: int, eof_ok: bool = False) -> bytes | None:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                if eof_ok and left == size:
                    return None
                raise EOFError("the connection ended inside a frame")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def env_digest(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    env = os.environ if environ is None else environ
    picked = sorted((name, value) for name, value in env.items()
                    if name in ENV_NAMES or name.startswith(ENV_PREFIXES) or name.lower().endswith("_proxy"))
    return hashlib.sha256(json.dumps(picked).encode()).hexdigest()[:24]


def _private(path: Path, what: str) -> None:
    """`path` is a real folder (not a link), ours, and nobody else's to read or enter."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise Unusable(f"{path} is not a folder (a link or a file is in the way of the {what})")
    if st.st_uid != os.getuid():
        raise Unusable(f"{path} belongs to uid {st.st_uid}, not to you: someone else made the {what}")
    if st.st_mode & 0o077:
        raise Unusable(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}): not a private {what}")


def _make_private(path: Path, what: str) -> Path:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unusable(f"cannot make {path}: {exc.strerror or exc}") from None
    _private(path, what)
    return path


def runtime_base() -> Path:
    """Where every project's service folder lives: the user's runtime folder when it is ours, else /tmp."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
            if st.st_uid == os.getuid() and not st.st_mode & 0o077:
                return _make_private(Path(xdg) / "workbench", "runtime folder")
        except OSError:
            pass
    tmp = os.environ.get("TMPDIR", "")
    return _make_private(Path(tmp if os.path.isabs(tmp) else "/tmp") / f"workbench-{os.getuid()}", "runtime folder")


def service_dir(root: Path) -> Path:
    """The private folder of the service for the project at `root` (made on first use)."""
    name = "svc-" + hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return _make_private(runtime_base() / name, "service folder")


def check_socket(folder: Path) -> bool:
    """True when the folder holds our socket; False when there is none. Unusable for anything else there
    (a file or link is removed: only we can write in the folder, so it is ours to clear)."""
    path = folder / SOCKET_NAME
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid():
        return True
    try:
        os.unlink(path)
    except OSError as exc:
        raise Unusable(f"{path} is not the service's socket and cannot be removed: {exc.strerror or exc}") from None
    return False


def peer(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return pid, uid, gid


def address(folder: Path) -> str:
    """The socket's address (a socket address holds about 100 bytes: a longer $TMPDIR cannot host one)."""
    path = str(folder / SOCKET_NAME)
    if len(path.encode()) >= 100:
        raise Unusable(f"the service's socket path would be too long ({path})")
    return path
