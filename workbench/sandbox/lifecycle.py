"""The one execution lifecycle: what every execution goes through, one-off or warm.

`Execution` is the template. In order, it
  1. emits `exec.started` (language, code, session, limits) and starts the output publisher;
  2. asks the transport to get ready (`prepare`: a one-off run takes its slot and writes its code file),
     snapshots the workspace, and has the transport start the process (`launch`);
  3. pumps the transport's chunks into the `LiveExecution` (live readers, digests, `exec.output`), while a
     disk guard watches the workspace's free space and a watchdog waits for the process past the point the
     transport says it must have ended (`backstop`);
  4. ends the execution with the transport's exit facts, and at `result()` finalises: the notes (limits
     not enforced, the transport's incidents, the disk floor, engine or runner errors, timeout, OOM, the
     PID limit, the session's state, background processes killed, what the workspace record skipped, the
     quota), the file diff, the `ExecutionResult` and `exec.finished` (published by `LiveExecution`).

A `Transport` is the only thing one-off and warm executions differ in: how the process is started, how its
output arrives, how it is signalled (cancel, disk floor, overdue), and what it says about how it ended
(`ExitFacts`). `workbench.sandbox.oneoff.OneOffTransport` runs the code through the engine's exec API;
`workbench.sandbox.warm.WarmTransport` hands it to the session container's runner over its socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from workbench import events
from workbench.config import Settings
from workbench.events import EventBus
from workbench.languages import Language
from workbench.project import Project
from workbench.sandbox import environment, policy, reads, workspace
from workbench.sandbox.deadlines import DEADLINES
from workbench.sandbox.diskguard import DiskGuard
from workbench.sandbox.engine import Engine
from workbench.sandbox.execution import EventSink, LiveExecution
from workbench.sandbox.types import ExecutionResult, StreamName


class SandboxHost(Protocol):
    """What executions and their transports use of `workbench.sandbox.sandbox.Sandbox` (typed here, so
    neither the lifecycle nor a transport imports the module that makes them)."""

    project: Project
    engine: Engine
    settings: Settings
    bus: EventBus | None
    session_id: str
    actor: str
    image: str
    identity: policy.Identity
    host_dir: Path  # the code folder's parent, read-only at /opt/workbench
    code_dir: Path
    one_at_a_time: threading.Lock
    oom_kill_count: int
    scrub_tmp: bool  # empty /tmp before the next one-off execution (a container an earlier session used)

    def notes(self) -> tuple[str, ...]: ...
    def workspace_owner(self) -> tuple[int, int] | None: ...
    def python_path(self) -> str: ...
    def labels(self, role: str) -> dict[str, str]: ...
    def ensure_running(self) -> str: ...
    def run_quiet(self, cmd: list[str], user: str | None = None) -> tuple[int | None, bytes]: ...
    def oom_kills(self) -> int | None: ...


@dataclass(frozen=True)
class Request:
    """What to run: the same for every transport."""

    execution_id: str
    runtime: Language
    code: str
    timeout: float
    session: str | None = None  # the warm session's name; None for a one-off execution
    database: str | None = None  # the PostgreSQL database the postgres language runs against (--db)


@dataclass(frozen=True)
class ExitFacts:
    """How the process ended, as far as the transport knows (and, after `Transport.explain`, means)."""

    exit_code: int | None = None
    error: str | None = None  # one line: why it ended without an exit code (or could not start)
    killed_by: str | None = None  # "timeout", "user", "oom", "disk"
    timed_out: bool = False
    interrupted: bool = False  # warm: the cell was interrupted (and its interpreter kept, unless state_lost)
    state_lost: bool = False  # warm: the session's interpreter was (re)started
    background_killed: int = 0  # warm: processes the cell left running, killed when it ended
    pid_limit: bool = False  # the engine could not start the process: the PID limit is the likely reason


class Ended(Exception):
    """The transport could not start the process, or lost it: the execution ends with these facts."""

    def __init__(self, facts: ExitFacts):
        super().__init__(facts.error or "the execution ended")
        self.facts = facts


class Transport:
    """How one execution's process is started, watched and signalled. The defaults do nothing."""

    def prepare(self) -> None:
        """Before the workspace snapshot (a one-off run takes its slot here, so the snapshot is its own)."""

    def launch(self) -> None:
        """Start the process. Ended when it could not be started."""
        raise NotImplementedError

    def refused(self, exc: Exception) -> ExitFacts:
        """The facts for an unexpected failure while preparing or launching."""
        return ExitFacts(error=f"the execution could not start: {exc}")

    def stream(self) -> Iterator[tuple[StreamName, bytes]]:
        """The process's output as it arrives, until it ends. Ended when the process was lost."""
        raise NotImplementedError

    def exit_facts(self) -> ExitFacts:
        """After `stream` ended normally: how the process ended."""
        raise NotImplementedError

    def release(self) -> None:
        """Once the process is over, before the execution ends (files, slots). Called exactly once."""

    def conclude(self, end: Callable[[], None], facts: ExitFacts) -> None:
        """End the live execution (`end()`): a transport may have cleanup that must happen around it."""
        end()

    def backstop(self) -> float:
        """Seconds after the launch by which the process must have ended; then `overdue` is called."""
        raise NotImplementedError

    def overdue(self) -> None:
        """The process outlived its backstop: make the stream end."""

    def cancel(self, live: LiveExecution) -> None:
        """The user asked to stop it."""

    def disk_low(self, live: LiveExecution) -> None:
        """The workspace's disk fell under its floor: stop the process now."""

    def settle(self) -> None:
        """At finalisation: wait for cleanup the end announced (a removed session container)."""

    def incidents(self) -> list[str]:
        """Notes about what happened before this execution (a session container replaced)."""
        return []

    def explain(self, facts: ExitFacts, live: LiveExecution) -> ExitFacts:
        """At finalisation: what the exit facts mean (a one-off run reads timeouts and OOM kills from the
        exit code; a warm run's runner has said so already)."""
        return facts


class Execution:
    """One execution, from `exec.started` to `exec.finished`, over any transport."""

    def __init__(self, sandbox: SandboxHost, request: Request, transport: Transport):
        self.sandbox, self.request, self.transport = sandbox, request, transport
        self.sink = EventSink(sandbox.bus, sandbox.session_id, sandbox.actor, request.execution_id)
        self.live = LiveExecution(request.execution_id, self.sink, sandbox.settings.sandbox.output_cap,
                                  self._finalize, self._cancel)
        self.before: workspace.Snapshot = {}
        self.guard: DiskGuard | None = None
        self.reads: reads.Reads | None = None
        self.reads_note: str | None = None
        self.facts = ExitFacts()
        self._ended = False
        self._cancel_watchdog: Callable[[], None] = lambda: None

    def start(self) -> LiveExecution:
        sandbox, request, transport = self.sandbox, self.request, self.transport
        self.sink.emit(events.EXEC_STARTED, events.ExecStarted(
            execution_id=request.execution_id, language=request.runtime.name, code=request.code,
            session=request.session, limits=policy.limits(sandbox.settings) | {
                "timeout": request.timeout, "enforced": sandbox.engine.limits_enforced}))
        self.sink.start()
        try:
            transport.prepare()
            self.before = workspace.snapshot(sandbox.project.workspace, owner=sandbox.workspace_owner())
            self._watch_reads()
            transport.launch()
        except Ended as ended:
            self._end(ended.facts)
            return self.live
        except Exception as exc:  # noqa: BLE001 - whatever broke, the execution ends with one line
            self._end(transport.refused(exc))
            return self.live
        self._cancel_watchdog = DEADLINES.after(self.transport.backstop(), self._overdue)
        threading.Thread(target=self._pump, name=f"exec-{request.execution_id}", daemon=True).start()
        self.guard = DiskGuard(sandbox.project.workspace, policy.parse_size(sandbox.settings.sandbox.disk_floor),
                               self._disk_low).start()
        return self.live

    def _watch_reads(self) -> None:
        """Start collecting the files code opens (after the snapshot, so the host's own walk is not in it)."""
        if not self.sandbox.settings.sandbox.record_reads:
            return
        watcher, self.reads_note = reads.watcher_for(self.sandbox.project.workspace)
        if watcher is not None:
            self.reads = watcher.begin()

    def _collect_reads(self) -> tuple[tuple, tuple, list[str]]:
        """Stop collecting (before the host hashes what changed, which would read as the code's reads)."""
        if self.reads is None:
            return (), (), [self.reads_note] if self.reads_note else []
        try:
            watcher, _ = reads.watcher_for(self.sandbox.project.workspace)
            if watcher is not None:
                watcher.end(self.reads)
            return self.reads.finish(set())
        except Exception as exc:  # noqa: BLE001 - the execution's own result is never lost to it
            return (), (), [f"files read could not be recorded: {type(exc).__name__}: {exc}"]

    # --- while it runs ----------------------------------------------------------------------------
    def _pump(self) -> None:
        try:
            for stream, data in self.transport.stream():
                self.live.feed(stream, data)
            facts = self.transport.exit_facts()
        except Ended as ended:
            facts = ended.facts
        except Exception as exc:  # noqa: BLE001 - a transport bug must still end the execution
            facts = ExitFacts(error=f"lost the execution: {exc}")
        self._end(facts)

    def _end(self, facts: ExitFacts) -> None:
        if self._ended:
            return
        self._ended = True
        self._cancel_watchdog()
        self.facts = facts
        try:
            self.transport.release()
        finally:
            self.transport.conclude(lambda: self.live.finish(facts.exit_code), facts)

    def _overdue(self) -> None:
        if not self.live.wait(0):
            self.transport.overdue()

    def _disk_low(self, _free: int) -> None:
        self.transport.disk_low(self.live)

    def _cancel(self) -> None:
        self.transport.cancel(self.live)

    # --- when it has ended ------------------------------------------------------------------------
    def _finalize(self, live: LiveExecution) -> ExecutionResult:
        sandbox, request, transport = self.sandbox, self.request, self.transport
        settings = sandbox.settings.sandbox
        transport.settle()  # the result (and its record) follows the cleanup it announces
        facts = self.facts
        disk_tripped = False
        if self.guard is not None:
            self.guard.stop()
            disk_tripped = self.guard.tripped
        if disk_tripped:
            facts = replace(facts, killed_by="disk")
        facts = transport.explain(facts, live)
        files_read, reads_own, read_notes = self._collect_reads()
        notes = [*sandbox.notes(), *transport.incidents()]
        if disk_tripped:
            notes.append(f"stopped: the disk holding the workspace fell under {settings.disk_floor} free "
                         f"([sandbox] disk_floor); free up space, then run again")
        if facts.error:
            notes.append(facts.error)
        if facts.timed_out:
            notes.append(f"stopped after the {request.timeout:g} s timeout")
        if facts.killed_by == "oom":
            notes.append(f"killed: out of memory (limit {settings.memory})")
        if facts.pid_limit:
            notes.append("the engine could not start the process (PID limit reached?)")
        if request.session is not None:
            if facts.state_lost:
                notes.append(f"session {request.session!r} was restarted: its variables are gone")
            elif facts.interrupted or facts.timed_out:
                notes.append("interrupted; the session's state was kept")
        if facts.background_killed:
            left = facts.background_killed
            notes.append(f"killed {left} background process{'es' if left != 1 else ''} the cell left running "
                         f"(a warm session keeps its interpreter, nothing else)")
        recorded = self._environment(notes)
        after = workspace.snapshot(sandbox.project.workspace)
        changes = workspace.diff(sandbox.project.workspace, self.before, after)
        notes.extend(workspace.notes(changes))
        notes.extend(read_notes)
        if changes and workspace.size_of(after) > policy.parse_size(settings.workspace_quota):
            notes.append(f"the workspace is over its quota of {settings.workspace_quota}")
        return ExecutionResult(
            execution_id=request.execution_id, language=request.runtime.name, code=request.code,
            exit_code=facts.exit_code, duration=live.duration, timed_out=facts.timed_out,
            killed_by=facts.killed_by,  # type: ignore[arg-type]
            stdout=live.records["stdout"].summary(), stderr=live.records["stderr"].summary(),
            files=changes, artifacts=workspace.artifacts(changes), session=request.session,
            limits_enforced=sandbox.engine.limits_enforced, state_lost=facts.state_lost, notes=tuple(notes),
            environment=recorded, files_read=files_read, reads_own=reads_own)

    def _environment(self, notes: list[str]) -> str | None:
        """The digest of the environment this execution ran with; its package list is published first when the
        log lacks it. A failure is one note: the execution's own result is never lost to it."""
        try:
            found = environment.record(self.sandbox, emitting=self.sandbox.bus is not None)
        except Exception as exc:  # noqa: BLE001 - whatever broke, one line, and the result goes on
            notes.append(f"the environment could not be recorded: {type(exc).__name__}: {exc}")
            return None
        if found.payload is not None:
            self.sink.emit(events.ENVIRONMENT_RECORDED, found.payload)
        return found.digest
