"""What requester and listener share: the typed request and decision, the private folder, the peer's uid.

See `workbench.approvals` for the design and the checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import stat
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.inert import one_line

KINDS = ("execute", "install", "write_file", "export_report", "reach_the_network")
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
    destination: str = ""  # reach_the_network: the host:port code asks to reach, and the rule that allows it
    rule: str = ""
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
        if self.what == "reach_the_network":  # the question the agent's own sessions ask (network.approval)
            return {"action": self.what, "destination": self.destination, "rule": self.rule,
                    "thought": f"code it runs asks to reach {self.destination} (allowed by the rule {self.rule}); "
                               "the answer holds for the rest of this call"}
        return {"action": self.what, "path": self.path}

    def details(self) -> dict[str, Any]:
        """What the audit record keeps of it (the code itself is in the exec events; here its digest)."""
        if self.what == "execute":
            return {"language": self.language,
                    "code_sha256": hashlib.sha256(self.code.encode("utf-8", "surrogatepass")).hexdigest()}
        if self.what == "install":
            return {"manager": self.manager, "packages": list(self.packages)}
        if self.what == "reach_the_network":
            return {"destination": self.destination, "rule": self.rule}
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


def read_line(sock: socket.socket, limit: int, deadline: float) -> bytes | None:
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


