"""The runner's wire protocol: frames, the per-connection key, and who is at the other end.

Both ends use this module: the runner inside the container (copied beside it into /opt/workbench, where
runner.py imports it by its bare name) and the host (`workbench.sandbox.container.protocol`). Standard
library only, Python 3.9+ (the image's python3).

Who may talk to the runner (it runs as the same uid as user code, so files cannot tell them apart):
  * the socket lives in a folder mounted only into the session container (/run/workbench, a host folder
    private to Workbench), never in the workspace;
  * a session key: the host writes 32 random bytes to /run/workbench/key before the container starts; the
    runner reads and deletes the file before any user code runs (`take_key`), and keeps the key in memory
    only. Every frame either side sends carries a tag (HMAC-SHA256 under a key derived from the session key
    and a fresh nonce the host sends first, over the direction and sequence number too), so whoever does
    not hold the key cannot forge, alter, reorder or replay a frame, and relaying frames changes nothing;
  * the host also checks who listens (`peer_pid`, SO_PEERCRED against the engine's State.Pid), and the
    runner hangs up on clients it can tell are inside its own PID namespace; it is non-dumpable, so code
    cannot ptrace it, read /proc/1/mem or take its listening socket out of /proc/1/fd (pidfd_getfd).
Under gVisor the last two checks see less (every socket of the container is the gofer's on the host, and
inside, every client looks like pid 1; /proc/1/fd stays listable), which is why the key carries the weight.
A separate uid for the runner would need CAP_SETUID in the container (all capabilities are dropped) or a
second user namespace mapping; the key does not.

Wire format, over that unix socket (never a network): the client sends <b"N"><4 bytes: 32><32-byte nonce>,
then both sides send frames of <1 byte kind><4 bytes big-endian length><payload><32-byte tag>.
Kinds: b"J" a JSON object, b"O" stdout bytes, b"E" stderr bytes. A client sends one JSON request:
  {"op": "exec", "session", "language", "code", "timeout", "python"}  -> O/E frames, then a J "done" frame
      (+ "argv", "extension" for a configured interpreter: the runner starts argv and hands it cell files)
      {"done": true, "exit_code", "timed_out", "interrupted", "state_lost", "killed_by", "background_killed"}
      (while it runs the client may send {"op": "interrupt"}; closing the socket interrupts too)
  {"op": "list"}                                  -> {"sessions": [{name, language, state, executions, idle}]}
  {"op": "restart", "session", "language"|null}   -> {"restarted": N}
  {"op": "ping"}                                  -> {"pong": true}
Timeout or interrupt: SIGINT to the interpreter's process group first; when the cell has not stopped
after GRACE seconds the interpreter is killed and restarted, and the answer says `state_lost`.
Frames over MAX_REQUEST bytes, other kinds, a wrong tag, and JSON that is not an object end the connection.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import struct
import threading

HEADER = struct.Struct(">cI")
GRACE = 2.0  # seconds between a cell's SIGINT and the kill of its interpreter
SWEEP_SECONDS = 3.0  # the longest the runner keeps killing what a cell left behind (a fork bomb forks on)
MAX_REQUEST = 64 << 20  # a request carries the cell's code
KEY_FILE = "key"  # beside the socket: the session key, read and removed by the runner before any code runs
KEY_SIZE = NONCE_SIZE = TAG_SIZE = 32


class ProtocolError(ValueError):
    """The other end broke the framing (a frame over the limit, or cut short)."""


def send_frame(sock, kind: bytes, payload: bytes) -> None:
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


def send_json(sock, obj) -> None:
    send_frame(sock, b"J", json.dumps(obj).encode())


def recv_exact(sock, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            if data:
                raise ProtocolError(f"the connection closed inside a frame ({len(data)} of {size} bytes)")
            raise EOFError("connection closed")
        data += part
    return bytes(data)


def recv_frame(sock, limit: int = MAX_REQUEST) -> tuple[bytes, bytes]:
    kind, size = HEADER.unpack(recv_exact(sock, HEADER.size))
    if size > limit:
        raise ProtocolError(f"a frame of {size} bytes is over the limit of {limit}")
    try:
        return kind, recv_exact(sock, size)
    except EOFError:
        raise ProtocolError(f"the connection closed inside a frame (0 of {size} bytes)") from None


def recv_object(sock, limit: int = MAX_REQUEST) -> dict:
    """One untagged J frame holding a JSON object; anything else is a ProtocolError."""
    return json_object(*recv_frame(sock, limit))


class Channel:
    """One connection's frames, each tagged with HMAC-SHA256 under a key of this connection only.

    The connection key is HMAC(session key, nonce) for the nonce the client sent first; each tag covers
    the direction, the frame's sequence number in that direction, its kind and its payload."""

    def __init__(self, sock, key: bytes, nonce: bytes, client: bool):
        self.sock = sock
        self.key = hmac.digest(key, b"workbench-runner-channel" + nonce, "sha256")
        self.out_label, self.in_label = (b"client", b"server") if client else (b"server", b"client")
        self.sent = self.received = 0
        self.lock = threading.Lock()  # a cell's frames and an interrupt may be sent from two threads

    @classmethod
    def open(cls, sock, key: bytes) -> Channel:
        """The client's side: send a fresh nonce, and use the connection key it makes."""
        nonce = secrets.token_bytes(NONCE_SIZE)
        sock.sendall(HEADER.pack(b"N", NONCE_SIZE) + nonce)
        return cls(sock, key, nonce, client=True)

    def _tag(self, label: bytes, number: int, kind: bytes, payload: bytes) -> bytes:
        return hmac.digest(self.key, label + number.to_bytes(8, "big") + kind + payload, "sha256")

    def fileno(self) -> int:
        return self.sock.fileno()

    def settimeout(self, timeout) -> None:
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, kind: bytes, payload: bytes) -> None:
        with self.lock:
            tag = self._tag(self.out_label, self.sent, kind, payload)
            self.sent += 1
            self.sock.sendall(HEADER.pack(kind, len(payload)) + payload + tag)

    def send_json(self, obj) -> None:
        self.send(b"J", json.dumps(obj).encode())

    def recv(self, limit: int = MAX_REQUEST) -> tuple[bytes, bytes]:
        kind, size = HEADER.unpack(recv_exact(self.sock, HEADER.size))
        if size > limit:
            raise ProtocolError(f"a frame of {size} bytes is over the limit of {limit}")
        try:
            data = recv_exact(self.sock, size + TAG_SIZE)
        except EOFError:
            raise ProtocolError(f"the connection closed inside a frame (0 of {size} bytes)") from None
        payload, tag = data[:size], data[size:]
        if not hmac.compare_digest(tag, self._tag(self.in_label, self.received, kind, payload)):
            raise Forged("a frame that does not carry this session's key (not from the other end we keyed)")
        self.received += 1
        return kind, payload

    def recv_object(self, limit: int = MAX_REQUEST) -> dict:
        kind, payload = self.recv(limit)
        return json_object(kind, payload)


class Forged(ProtocolError):
    """A frame whose tag is wrong: it was not sent by the holder of the session key."""


def json_object(kind: bytes, payload: bytes) -> dict:
    if kind != b"J":
        raise ProtocolError(f"expected a JSON frame, got kind {kind!r}")
    try:
        obj = json.loads(payload)
    except ValueError:
        raise ProtocolError("a JSON frame that is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a JSON frame that is not an object ({type(obj).__name__})")
    return obj


def take_key(folder: str) -> bytes | None:
    """Read the session key the host left beside the socket and remove the file (before any code runs)."""
    path = os.path.join(folder, KEY_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        key = os.read(fd, KEY_SIZE + 1)
    finally:
        os.close(fd)
    try:
        os.unlink(path)
    except OSError:
        return None  # a key left readable for code to find is no key
    return key if len(key) == KEY_SIZE else None


def peer_pid(sock) -> int:
    """The pid of the process at the other end, as this process's PID namespace sees it (0: outside it)."""
    pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return pid
