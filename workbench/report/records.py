"""The report's records: plain dataclasses for what the report shows (executions, their output excerpts and
files, packages, sessions, agent steps, totals), filled by `workbench.report.model.collect`.

Kept apart from the collector so that the PDF, the notebook export and the tests can name what a report holds
without the code that reads audit entries into it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

EXCERPT_LINES = 60
EXCERPT_CHARS = 6000


class EntryLike(Protocol):
    seq: int
    time: datetime
    kind: str
    session_id: str
    actor: str
    user: str
    payload: dict[str, Any]
    hash: str


@dataclass
class StreamExcerpt:
    """One output stream of one execution."""

    name: str  # "stdout" / "stderr"
    parts: list[str] = field(default_factory=list)
    shown_chars: int = 0
    shown_lines: int = 0
    logged_chars: int = 0  # characters of this stream found in the log's exec.output events
    cut: bool = False  # the report shows less than the log holds
    total_bytes: int | None = None  # what the run wrote (from exec.finished)
    kept_bytes: int | None = None  # what the sandbox kept (and logged)
    sha256: str = ""
    truncated: bool = False  # the sandbox's cap cut the output

    def add(self, text: str) -> None:
        self.logged_chars += len(text)
        if self.cut:
            return
        room_chars = EXCERPT_CHARS - self.shown_chars
        room_lines = EXCERPT_LINES - self.shown_lines
        piece = text
        if len(piece) > room_chars:
            piece = piece[:max(room_chars, 0)]
            self.cut = True
        newlines = piece.count("\n")
        if newlines >= room_lines:
            at = -1
            for _ in range(room_lines):
                at = piece.index("\n", at + 1)
            if at + 1 < len(piece) or len(piece) < len(text):
                self.cut = True
            piece = piece[:at + 1]
            newlines = room_lines
        self.parts.append(piece)
        self.shown_chars += len(piece)
        self.shown_lines += newlines

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def empty(self) -> bool:
        return self.logged_chars == 0 and not self.total_bytes


@dataclass
class FileTouch:
    path: str
    change: str
    sha256: str | None
    size: int | None


@dataclass
class ArtifactRef:
    path: str
    mime: str
    sha256: str
    size: int | None


@dataclass
class Execution:
    number: int  # 1-based, in report order
    execution_id: str
    session_id: str
    actor: str
    user: str
    seq: int  # the first entry about it
    started_at: datetime | None = None
    finished_at: datetime | None = None
    language: str = ""
    code: str | None = None  # None when exec.started is not in the report's range
    limits: dict[str, Any] = field(default_factory=dict)
    warm_session: str = ""
    exit_code: int | None = None
    duration: float | None = None
    timed_out: bool = False
    killed_by: str = ""
    limits_enforced: bool | None = None
    state_lost: bool = False
    notes: list[str] = field(default_factory=list)
    stdout: StreamExcerpt = field(default_factory=lambda: StreamExcerpt("stdout"))
    stderr: StreamExcerpt = field(default_factory=lambda: StreamExcerpt("stderr"))
    files: list[FileTouch] = field(default_factory=list)
    artifacts: list[ArtifactRef] = field(default_factory=list)
    files_read: list[FileTouch] = field(default_factory=list)  # change: "read", or what the host found there
    connections: list[DbConnection] = field(default_factory=list)  # database connections made while it ran
    requests: list[HttpRequest] = field(default_factory=list)  # HTTP requests through the policy proxy
    leaks: list[str] = field(default_factory=list)  # secret.leak: which secret, where, how often (no value)
    reads_own: dict[str, int] = field(default_factory=dict)  # files read in Workbench's own folders, counted
    finished: bool = False
    entry_hashes: list[tuple[int, str]] = field(default_factory=list)  # (seq, hash) of its entries

    @property
    def ok(self) -> bool:
        return self.finished and self.exit_code == 0 and not self.timed_out and not self.killed_by

    @property
    def outcome(self) -> str:
        if not self.finished:
            return "no result recorded"
        if self.timed_out:
            return "timed out"
        if self.killed_by:
            return f"killed ({self.killed_by})"
        if self.exit_code is None:
            return "exit code unknown"
        return "succeeded" if self.exit_code == 0 else "failed"


@dataclass
class Package:
    name: str
    version: str
    manager: str
    time: datetime
    session_id: str
    actor: str


@dataclass
class InstallNetwork:
    """Where one package install reached through the egress proxy, and what it was refused."""

    time: datetime
    session_id: str
    actor: str
    manager: str
    reached: tuple[str, ...]
    refused: tuple[str, ...]
    unreachable: tuple[str, ...]
    requests: int


@dataclass
class DbConnection:
    """One database connection code made through the session's PgBouncer (`net.connection`)."""

    time: datetime
    session_id: str
    execution_id: str
    database: str
    role: str
    duration: float | None
    bytes_up: int | None
    bytes_down: int | None
    refused: str  # "" when it reached the database


@dataclass
class HttpRequest:
    """One HTTP request code sent through the session's policy proxy (`net.request`)."""

    time: datetime
    session_id: str
    execution_id: str
    destination: str
    method: str
    path: str
    status: int | None
    bytes_up: int | None
    bytes_down: int | None
    duration: float | None
    credential: str  # the secret's name when one was injected
    refused: str  # "" when the policy allowed it


@dataclass
class ErrorNote:
    time: datetime
    session_id: str
    actor: str
    message: str
    seq: int


@dataclass
class TaskNote:
    time: datetime
    kind: str  # task.started / task.finished
    actor: str
    text: str


@dataclass
class AgentStep:
    """What the agent decided (llm.action) or failed to say (llm.malformed), in its own words."""

    time: datetime
    actor: str
    step: int | None
    action: str
    thought: str
    error: str = ""


# What a session's timeline holds, in log order.
Item = Execution | Package | InstallNetwork | ErrorNote | TaskNote | AgentStep


@dataclass
class Session:
    id: str
    first_seq: int
    started_at: datetime
    finished_at: datetime | None = None
    trigger: str = ""
    actors: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    outcome: str = ""
    workbench_version: str = ""
    schedule: str = ""
    cron: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    sandbox: str = ""  # engine, isolation and image as the sandbox.started entry recorded them
    items: list[Item] = field(default_factory=list)
    entries: int = 0
    agent_steps: int = 0  # llm.* entries
    other_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def executions(self) -> list[Execution]:
        return [item for item in self.items if isinstance(item, Execution)]


@dataclass
class LanguageTotals:
    count: int = 0
    succeeded: int = 0
    failed: int = 0
    seconds: float = 0.0


@dataclass
class ReportModel:
    sessions: list[Session] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)
    errors: list[ErrorNote] = field(default_factory=list)
    install_networks: list[InstallNetwork] = field(default_factory=list)
    db_connections: list[DbConnection] = field(default_factory=list)
    http_requests: list[HttpRequest] = field(default_factory=list)
    secret_leaks: int = 0
    files: dict[str, tuple[FileTouch, int]] = field(default_factory=dict)  # path -> (last change, times)
    models: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)  # distinct sandbox descriptions recorded in the log
    first_time: datetime | None = None
    last_time: datetime | None = None
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    unknown_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def by_language(self) -> dict[str, LanguageTotals]:
        totals: dict[str, LanguageTotals] = {}
        for ex in self.executions:
            t = totals.setdefault(ex.language or "(unknown)", LanguageTotals())
            t.count += 1
            t.succeeded += ex.ok
            t.failed += not ex.ok
            t.seconds += ex.duration or 0.0
        return dict(sorted(totals.items()))

    @property
    def compute_seconds(self) -> float:
        return sum(ex.duration or 0.0 for ex in self.executions)

    @property
    def succeeded(self) -> int:
        return sum(1 for ex in self.executions if ex.ok)

    @property
    def limits_not_enforced(self) -> int:
        return sum(1 for ex in self.executions if ex.limits_enforced is False)


def model_of_actor(actor: str) -> str:
    """``agent:<name>/<model>`` -> ``<model>``; anything else -> ""."""
    if actor.startswith("agent:") and "/" in actor:
        return actor.split("/", 1)[1]
    return ""
