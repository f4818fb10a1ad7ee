"""What a replay reads of the log: the recorded executions of a session, each with what it needs to run again.

Everything comes from the audit log through the event contract (`workbench.events`), as the report reads
it: the code and language and timeout (`exec.started`), the output as the code printed it (`exec.output`,
joined per stream), the exit code, stream digests, files changed and files read (`exec.finished`), and the
image its environment named (`environment.recorded`, stored once in the log, so looked up by digest across
every session). An execution with no `exec.finished` (a process killed mid-run) cannot be compared and is
left out, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench import events
from workbench.audit import AuditLog
from workbench.errors import WorkbenchError
from workbench.inert import one_line

REPLAY_TRIGGER = "replay"
KINDS = (events.SESSION_STARTED, events.SANDBOX_STARTED, events.EXEC_STARTED, events.EXEC_OUTPUT,
         events.EXEC_FINISHED)


class ReplayError(WorkbenchError):
    """Nothing to replay: no such session or execution, or a session with no finished execution."""

    exit_code = 2


class LogNotVerified(WorkbenchError):
    """The audit log does not verify: what it says ran cannot be the measure of a replay."""

    exit_code = 1


@dataclass
class Recorded:
    """One recorded execution, as the log holds it."""

    execution_id: str
    session_id: str
    language: str
    code: str
    timeout: float | None
    warm_session: str | None
    image: str  # the image reference its session's sandbox named
    finished: events.ExecFinished
    output: dict[str, list[str]] = field(default_factory=lambda: {"stdout": [], "stderr": []})
    seq: int = 0

    def text(self, stream: str) -> str:
        return "".join(self.output.get(stream, ()))

    def stream(self, name: str) -> dict[str, Any]:
        return self.finished.stream(name)


@dataclass
class Selection:
    """The executions to replay, in log order, and what the log says of their environments."""

    session_id: str
    trigger: str
    executions: list[Recorded]
    environments: dict[str, events.EnvironmentRecorded]  # digest -> the recorded package list
    notes: list[str] = field(default_factory=list)


def _decode(entry: Any) -> Any:
    return events.decode(entry.kind, entry.payload)


def latest_session(log: AuditLog) -> str:
    """The newest session with a finished execution that is not itself a replay."""
    replays = {e.session_id for e in log.entries(kinds=[events.SESSION_STARTED])
               if getattr(_decode(e), "trigger", "") == REPLAY_TRIGGER}
    found = ""
    for entry in log.entries(kinds=[events.EXEC_FINISHED]):
        if entry.session_id not in replays:
            found = entry.session_id
    if not found:
        raise ReplayError("the audit log holds no finished execution to replay")
    return found


def session_of(log: AuditLog, execution_id: str) -> str:
    for entry in log.entries(kinds=[events.EXEC_STARTED]):
        if entry.payload.get("execution_id") == execution_id:
            return entry.session_id
    raise ReplayError(f"no execution {one_line(execution_id)!r} in the audit log",
                      "see the execution ids with: workbench audit export")


def select(log: AuditLog, session_id: str | None = None, execution_id: str | None = None) -> Selection:
    """The recorded executions of `session_id` (default: the one holding `execution_id`, else the newest
    session that is not a replay); only `execution_id` when it is given."""
    if execution_id is not None:
        owner = session_of(log, execution_id)
        if session_id is not None and session_id != owner:
            raise ReplayError(f"execution {one_line(execution_id)!r} is in session {one_line(owner)!r}, "
                              f"not {one_line(session_id)!r}")
        session_id = owner
    elif session_id is None:
        session_id = latest_session(log)
    trigger, image, notes = "", "", []
    started: dict[str, tuple[events.ExecStarted, int]] = {}
    output: dict[str, dict[str, list[str]]] = {}
    executions: list[Recorded] = []
    seen_any = False
    for entry in log.entries(session=session_id, kinds=KINDS):
        seen_any = True
        payload = _decode(entry)
        if isinstance(payload, events.SessionStarted):
            trigger = payload.trigger
        elif isinstance(payload, events.SandboxStarted):
            image = payload.image
        elif isinstance(payload, events.ExecStarted):
            started[payload.execution_id] = (payload, entry.seq)
            output[payload.execution_id] = {"stdout": [], "stderr": []}
        elif isinstance(payload, events.ExecOutput):
            chunks = output.get(payload.execution_id)
            if chunks is not None and payload.stream in chunks:
                chunks[payload.stream].append(payload.text or payload.data or "")
        elif isinstance(payload, events.ExecFinished) and payload.execution_id in started:
            begun, seq = started.pop(payload.execution_id)
            timeout = begun.limits.get("timeout") if isinstance(begun.limits, dict) else None
            executions.append(Recorded(
                execution_id=begun.execution_id, session_id=session_id, language=begun.language or payload.language,
                code=begun.code, timeout=float(timeout) if isinstance(timeout, int | float) else None,
                warm_session=begun.session, image=image, finished=payload,
                output=output.pop(payload.execution_id), seq=seq))
    if not seen_any:
        raise ReplayError(f"no session {one_line(session_id)!r} in the audit log",
                          "see the sessions with: workbench audit export")
    for unfinished in started:
        notes.append(f"execution {one_line(unfinished)} has no exec.finished (it never ended): not replayed")
    if execution_id is not None:
        executions = [e for e in executions if e.execution_id == execution_id]
        if not executions:
            raise ReplayError(f"execution {one_line(execution_id)!r} never finished: there is nothing to compare")
    if not executions:
        raise ReplayError(f"session {one_line(session_id)!r} holds no finished execution to replay")
    return Selection(session_id, trigger, executions, environments(log), notes)


def environments(log: AuditLog) -> dict[str, events.EnvironmentRecorded]:
    found: dict[str, events.EnvironmentRecorded] = {}
    for entry in log.entries(kinds=[events.ENVIRONMENT_RECORDED]):
        payload = _decode(entry)
        if isinstance(payload, events.EnvironmentRecorded) and payload.digest not in found:
            found[payload.digest] = payload
    return found
