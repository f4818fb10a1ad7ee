"""Payloads the sandbox publishes: a sandbox opened, an execution started, its output, its end.

Field names and values are those `workbench.sandbox` wrote before the contract (see `contract`), so older
logs decode and newer entries hash as they always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class SandboxStarted(Payload):
    """The sandbox of a session is ready: which engine, how code's user maps to the host, its limits.

    Version 2 added `user` and `mapping`."""

    KIND = K.SANDBOX_STARTED
    VERSION = 2

    engine: str = C.text()
    endpoint: str = C.text()
    rootless: bool | None = C.flag()
    limits_enforced: bool | None = C.flag()
    image: str = C.text()
    limits: dict[str, Any] = C.mapping()
    user: str = C.text(since=2)
    mapping: str = C.text(since=2)


@declare
@dataclass(frozen=True, slots=True)
class ExecStarted(Payload):
    """An execution began: the code as run and the limits it runs under.

    `session` is the warm session's name (None for a one-off run). `limits` holds the sandbox limits
    (`workbench.sandbox.policy.limits`) plus this run's `timeout` and whether the engine `enforced` them.
    Version 1 (the first logs, and test fakes until the contract) had neither `session` nor `limits`."""

    KIND = K.EXEC_STARTED
    VERSION = 2

    execution_id: str = C.text(required=True)
    language: str = C.text()
    code: str = C.text()
    session: str | None = C.text(None, since=2)
    limits: dict[str, Any] = C.mapping(since=2)


@declare
@dataclass(frozen=True, slots=True)
class ExecOutput(Payload):
    """A chunk of one stream's output, coalesced. `offset` is the stream position of its first byte and
    `bytes` its length before decoding (version 2); `text` is UTF-8 with bad bytes backslash-escaped."""

    KIND = K.EXEC_OUTPUT
    VERSION = 2

    execution_id: str = C.text(required=True)
    stream: str = C.text("stdout")
    text: str = C.text()
    offset: int | None = C.integer(since=2, omit=True)
    bytes: int | None = C.integer(since=2, omit=True)
    data: str | None = C.text(None, legacy=True)  # what the first logs called `text`


@declare
@dataclass(frozen=True, slots=True)
class ExecFinished(Payload):
    """An execution ended (`workbench.sandbox.types.ExecutionResult.to_payload`).

    `stdout`/`stderr` are stream summaries (`total_bytes`, `sha256`, `truncated`, `kept_bytes`): the bytes
    themselves travel in `exec.output`. `files` are the workspace changes (`path`, `change`, `sha256`,
    `size`, and `kind`/`target` for what is not a regular file), `artifacts` rich results (`path`, `mime`,
    `sha256`, `size`). Version 2 added `session`, `state_lost` and `notes`; version 3 `environment`, the
    digest of the `environment.recorded` it ran with (left out where none was recorded); version 4
    `files_read`, the workspace files code opened for reading (`path`, `sha256`, `size`, and `kind`/`target`
    for what the host found that is not a regular file; `workbench.sandbox.reads`), and `reads_own`, files
    read in Workbench's own folders counted per folder ({".venv": 812}); both left out where empty."""

    KIND = K.EXEC_FINISHED
    VERSION = 4

    execution_id: str = C.text()
    language: str = C.text()
    session: str | None = C.text(None, since=2)
    exit_code: int | None = C.integer()
    duration: float | None = C.number()
    timed_out: bool | None = C.flag()
    killed_by: str | None = C.text(None)
    limits_enforced: bool | None = C.flag()
    state_lost: bool | None = C.flag(since=2)
    notes: tuple[str, ...] = C.items(since=2)
    stdout: Any = C.anything()
    stderr: Any = C.anything()
    files: tuple[Any, ...] = C.items()
    artifacts: tuple[Any, ...] = C.items()
    environment: str | None = C.text(None, omit=True, since=3)
    files_read: tuple[Any, ...] = C.items(since=4, omit=True)
    reads_own: dict[str, Any] = C.mapping(since=4, omit=True)

    def stream(self, name: str) -> dict[str, Any]:
        """A stream's summary as a dict ({} where the entry holds none, or something else)."""
        value = self.stdout if name == "stdout" else self.stderr
        return dict(value) if isinstance(value, dict) else {}
