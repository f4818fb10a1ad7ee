"""What the command line and the sandbox service share: frames, the private runtime folder, who may talk.

The client imports this before anything else of Workbench, and a warm `workbench exec` has 150 ms in all,
so this module imports only what the interpreter has loaded at startup anyway, plus `_socket` and
`_sha256` (the C modules under `socket` and `hashlib`: `socket` pulls in `enum` and `selectors`, and
`hashlib` loads OpenSSL, 10-15 ms together on a busy laptop). No JSON either (`json` loads `re`): the
few fields travel as netstrings (`fields` / `unfields`).

Frames are one kind byte, a 4-byte big-endian length and the payload. The client sends one request
(`R`: fields, see `REQUEST`) and may later send a cancel (`C`); the service answers `A` (accepted: from
here on the call has effects, so the client must not run it again), then output (`O` stdout, `E` stderr,
raw bytes; `S` a line Workbench itself writes, already made visible), then `X` (fields: the exit code and
the one-line error, if any). Before `A` it may instead answer `F` (run it in-process: a restricted project,
say) or `T` (stale: this service is ending; start a fresh one). `Q` as the first frame asks it to end.

The folder holding the socket is `$XDG_RUNTIME_DIR/workbench/svc-<hash of the project path>/` (else
`$TMPDIR` or /tmp `/workbench-<uid>/...`), 0700 and ours, checked without following links: a folder or
socket someone else made is refused, and the command runs in-process instead. Both ends check the other's
uid from the kernel (SO_PEERCRED).
"""

from __future__ import annotations

import _socket
import os
import stat
import sys

try:
    from _sha256 import sha256
except ImportError:  # Python 3.12 names it _sha2
    from hashlib import sha256

MAX_FRAME = 256 * 1024 * 1024  # a request carries the code; the in-process path takes any size too
SOCKET_NAME = "sock"
LOG_NAME = "service.log"
LOCK_NAME = "lock"
REQUEST = ("root", "language", "code", "timeout", "session", "runtime", "version", "package", "python", "env")

# The environment a service was started with must be the caller's: the settings read WORKBENCH_*, the
# engine DOCKER_*/CONTAINER_*, the keyring DBUS_*/KEYRING*, the actor LOGNAME/USER. A call whose
# environment differs from the service's replaces it.
ENV_NAMES = ("HOME", "USER", "LOGNAME", "LNAME", "USERNAME", "PATH", "TMPDIR", "TZ", "LANG", "LC_ALL",
             "LC_CTYPE", "CI", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PYTHONPATH")
ENV_PREFIXES = ("WORKBENCH_", "XDG_", "DOCKER_", "CONTAINER", "KEYRING", "PYTHON_KEYRING", "DBUS_")


class Unusable(Exception):
    """The service cannot be used for this call (one line why); the command runs in-process."""


class Frames:
    """Framed reads and writes on a connected socket (`socket.socket` or `_socket.socket`)."""

    def __init__(self, sock):
        self.sock = sock

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        self.sock.sendall(kind + len(payload).to_bytes(4, "big") + payload)

    def recv(self) -> tuple[bytes, bytes] | None:
        """The next frame, or None at a clean end of stream between frames. EOFError when cut short."""
        head = self._exactly(5, eof_ok=True)
        if head is None:
            return None
        size = int.from_bytes(head[1:], "big")
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes is over the limit")
        return head[:1], self._exactly(size) or b""

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


def fields(values: list[str | None]) -> bytes:
    """Strings (or None) as netstrings: `<length>:<s|->text,`."""
    out = []
    for value in values:
        data = b"-" if value is None else b"s" + value.encode("utf-8", "surrogatepass")
        out.append(b"%d:%s," % (len(data), data))
    return b"".join(out)


def unfields(payload: bytes, count: int) -> list[str | None]:
    """The inverse of `fields`, exactly `count` of them; ValueError for anything else."""
    values: list[str | None] = []
    at = 0
    while at < len(payload):
        colon = payload.index(b":", at, at + 12)
        size = int(payload[at:colon])
        data = payload[colon + 1:colon + 1 + size]
        if size < 1 or len(data) != size or payload[colon + 1 + size:colon + 2 + size] != b",":
            raise ValueError("a malformed field")
        if data[:1] == b"-" and size == 1:
            values.append(None)
        elif data[:1] == b"s":
            values.append(data[1:].decode("utf-8", "surrogatepass"))
        else:
            raise ValueError("a field of unknown type")
        at = colon + 2 + size
    if len(values) != count:
        raise ValueError(f"{len(values)} fields where {count} were expected")
    return values


def digest(text: str) -> str:
    return sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def env_digest(environ=None) -> str:
    env = os.environ if environ is None else environ
    picked = sorted(f"{name}={value}" for name, value in env.items()
                    if name in ENV_NAMES or name.startswith(ENV_PREFIXES) or name.lower().endswith("_proxy"))
    return digest("\0".join(picked))[:24]


def _private(path: str, what: str) -> None:
    """`path` is a real folder (not a link), ours, and nobody else's to read or enter."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise Unusable(f"{path} is not a folder (a link or a file is in the way of the {what})")
    if st.st_uid != os.getuid():
        raise Unusable(f"{path} belongs to uid {st.st_uid}, not to you: someone else made the {what}")
    if st.st_mode & 0o077:
        raise Unusable(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}): not a private {what}")


def _make_private(path: str, what: str) -> str:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unusable(f"cannot make {path}: {exc.strerror or exc}") from None
    _private(path, what)
    return path


def runtime_base() -> str:
    """Where every project's service folder lives: the user's runtime folder when it is ours, else /tmp."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
            if st.st_uid == os.getuid() and not st.st_mode & 0o077:
                return _make_private(os.path.join(xdg, "workbench"), "runtime folder")
        except OSError:
            pass
    tmp = os.environ.get("TMPDIR", "")
    return _make_private(os.path.join(tmp if os.path.isabs(tmp) else "/tmp", f"workbench-{os.getuid()}"),
                         "runtime folder")


def service_dir(root: str) -> str:
    """The private folder of the service for the project at `root` (made on first use)."""
    return _make_private(os.path.join(runtime_base(), "svc-" + digest(root)[:16]), "service folder")


def check_socket(folder: str) -> bool:
    """True when the folder holds our socket; False when there is none. Unusable for anything else there
    (a file or link is removed: only we can write in the folder, so it is ours to clear)."""
    path = os.path.join(folder, SOCKET_NAME)
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


def peer(sock) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel."""
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return tuple(int.from_bytes(creds[i:i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))  # type: ignore[return-value]


def address(folder: str) -> str:
    """The socket's address (a socket address holds about 100 bytes: a longer $TMPDIR cannot host one)."""
    path = os.path.join(folder, SOCKET_NAME)
    if len(path.encode()) >= 100:
        raise Unusable(f"the service's socket path would be too long ({path})")
    return path


def unix_socket():
    """A new Unix stream socket (close-on-exec)."""
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
