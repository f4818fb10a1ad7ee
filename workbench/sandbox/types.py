"""The sandbox's seam: what the rest of Workbench sees of an execution.

An `Execution` yields `OutputChunk`s live as the code produces them and then ends with a frozen
`ExecutionResult`. The agent loop, the CLI and the TUI code against these types only; how the container
engine is driven stays inside `workbench.sandbox`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

StreamName = Literal["stdout", "stderr"]
KilledBy = Literal["oom", "timeout", "user", "disk"]
ChangeKind = Literal["created", "modified", "deleted"]
# A package manager's name: one of `workbench.sandbox.managers.MANAGERS` (pip, r, apt and plug-ins'), which
# is what validates it (an unknown name is a UsageError naming the choices), so no closed list lives here.
PackageManager = str


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """A piece of output as it arrived: which stream, the raw bytes, and when (time.monotonic())."""

    stream: StreamName
    data: bytes
    at: float


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """One stream's output: every byte counted and hashed, the first `cap` bytes kept."""

    total_bytes: int
    sha256: str
    kept: bytes
    truncated: bool

    def text(self) -> str:
        """The kept bytes as text; bytes that are not UTF-8 are shown as escapes, never dropped."""
        return self.kept.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file in the workspace that the execution created, modified or deleted (path relative to it).

    Not every entry is a regular file: code may leave a symlink (recorded with its target string, never
    followed, no hash), a FIFO, a socket or a device (recorded as what it is, never opened)."""

    path: str
    change: ChangeKind
    sha256: str | None  # None for a deleted file, and for anything that is not a regular file
    size: int | None
    kind: str = "file"  # file, symlink, fifo, socket, device, other (workbench.confined.kind_of)
    target: str | None = None  # a symlink's target, as written

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"path": self.path, "change": self.change, "sha256": self.sha256,
                                   "size": self.size}
        if self.kind != "file":  # regular files keep the payload shape older logs have
            payload["kind"] = self.kind
            if self.target is not None:
                payload["target"] = self.target
        return payload


@dataclass(frozen=True, slots=True)
class FileRead:
    """A file in the workspace that the execution opened for reading, as it was when read (path relative to
    it; `workbench.sandbox.reads`). `kind` says what the host found there when it hashed it: a regular file,
    or a symlink (target recorded, never followed), a FIFO (never opened), "deleted" (gone before or while
    it was hashed), or "refused" (a folder above it had become a symlink or a file)."""

    path: str
    sha256: str | None  # None for anything that is not a regular file, and past the hashing budget
    size: int | None
    kind: str = "file"
    target: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"path": self.path, "sha256": self.sha256, "size": self.size}
        if self.kind != "file":
            payload["kind"] = self.kind
            if self.target is not None:
                payload["target"] = self.target
        return payload


@dataclass(frozen=True, slots=True)
class Artifact:
    """A rich result, such as a plot, written by the execution."""

    path: str
    mime: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    execution_id: str
    language: str
    code: str
    exit_code: int | None  # None only when the engine could not say
    duration: float  # seconds, wall clock
    timed_out: bool
    killed_by: KilledBy | None
    stdout: StreamSummary
    stderr: StreamSummary
    files: tuple[FileChange, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    session: str | None = None  # the warm session's name, None for a one-off run
    limits_enforced: bool = True  # False where the engine silently ignores cgroup limits
    state_lost: bool = False  # a warm session had to restart its interpreter
    notes: tuple[str, ...] = ()  # things the user should know (e.g. "memory limit not enforced")
    environment: str | None = None  # the digest of the environment it ran with (workbench.sandbox.environment)
    files_read: tuple[FileRead, ...] = ()  # workspace files it opened for reading (workbench.sandbox.reads)
    reads_own: tuple[tuple[str, int], ...] = ()  # (Workbench's own folder, how many files read there)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.killed_by is None

    def to_payload(self) -> dict[str, Any]:
        """The JSON-able form used in `exec.finished` events."""
        return {
            "execution_id": self.execution_id,
            "language": self.language,
            "session": self.session,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 6),
            "timed_out": self.timed_out,
            "killed_by": self.killed_by,
            "limits_enforced": self.limits_enforced,
            "state_lost": self.state_lost,
            "notes": list(self.notes),
            "stdout": _stream_payload(self.stdout),
            "stderr": _stream_payload(self.stderr),
            "files": [f.to_payload() for f in self.files],
            "artifacts": [{"path": a.path, "mime": a.mime, "sha256": a.sha256, "size": a.size}
                          for a in self.artifacts],
        } | ({"environment": self.environment} if self.environment else {}) | (
            {"files_read": [r.to_payload() for r in self.files_read]} if self.files_read else {}) | (
            {"reads_own": dict(self.reads_own)} if self.reads_own else {})


def _stream_payload(summary: StreamSummary) -> dict[str, Any]:
    # The kept bytes themselves travel in the `exec.output` events (up to the cap), not here twice.
    return {"total_bytes": summary.total_bytes, "sha256": summary.sha256, "truncated": summary.truncated,
            "kept_bytes": len(summary.kept)}


@runtime_checkable
class Execution(Protocol):
    """A running (or finished) execution: iterate for live chunks, then ask for the result."""

    execution_id: str

    def __iter__(self) -> Iterator[OutputChunk]: ...

    def result(self) -> ExecutionResult:
        """Wait for the end (draining the output not yet read) and return the frozen result."""
        ...

    def cancel(self) -> None:
        """Stop the execution now (killed_by="user")."""
        ...


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    name: str
    version: str
    manager: PackageManager


@dataclass(frozen=True, slots=True)
class InstallResult:
    manager: PackageManager
    requested: tuple[str, ...]
    installed: tuple[InstalledPackage, ...]
    exit_code: int
    output: str  # combined log, capped
    duration: float
    reached: tuple[str, ...] = ()  # host:port the install reached through the egress proxy
    refused: tuple[str, ...] = ()  # host:port it tried and was refused (not an install source)
    unreachable: tuple[str, ...] = ()  # "host:port: why" for allowed places that did not answer

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """What the sandbox knows about its isolation, for the status bar, doctor and reports."""

    engine: str  # "podman 4.3.1", "docker 27.0"
    endpoint: str
    rootless: bool
    limits_enforced: bool
    image: str
    limits: dict[str, Any] = field(default_factory=dict)


class SandboxAPI(Protocol):
    """What the agent loop, the CLI and the TUI use. `workbench.sandbox.Sandbox` implements it."""

    @property
    def info(self) -> SandboxInfo: ...

    def execute(self, language: str, code: str, *, timeout: float | None = None,
                session: str | None = None, database: str | None = None) -> Execution: ...

    def install(self, manager: PackageManager, packages: Sequence[str]) -> InstallResult: ...

    def close(self) -> None: ...
