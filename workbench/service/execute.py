"""One `workbench exec`, the same code whether it runs in the command's own process or in the service.

Both paths call `run_exec`, so what the audit log records cannot differ between them: the same work
session (`session.started` with the caller's actor and trigger, `command: exec`), the same sandbox events,
the same execution lifecycle, the same `session.finished`. They differ only in where the bytes go
(`Output`) and, in the service, in how the sandbox is opened (`open_sandbox`: the service's engine
connection and its idle container, see `workbench.service.pool`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from workbench import events, languages
from workbench.config import Settings
from workbench.inert import one_line
from workbench.project import Project
from workbench.sandbox.errors import ExecutionNotStarted, ExecutionTimedOut
from workbench.sandbox.execution import LiveExecution
from workbench.sandbox.types import ExecutionResult
from workbench.session import SandboxOpener, WorkSession

NOT_ENFORCED = ("workbench: note: this engine does not enforce memory/CPU/PID limits "
                "(rootless Podman on cgroup v1); rlimits and the timeout stand in")


class Output(Protocol):
    """Where an execution's bytes go: the code's own streams raw, Workbench's own lines on stderr."""

    def stdout(self, data: bytes) -> None: ...
    def stderr(self, data: bytes) -> None: ...
    def say(self, text: str) -> None: ...


def installing_line(payload: dict, language: str) -> str:
    packages = " ".join(one_line(str(name)) for name in payload.get("packages", ()))
    return (f"workbench: installing {packages} ({one_line(str(payload.get('manager', '?')))}) for "
            f"{one_line(language)}, on its first use")


def run_exec(project: Project, settings: Settings, language: str, source: str, *, timeout: float | None,
             session: str | None, output: Output, open_sandbox: SandboxOpener | None = None,
             started: Callable[[LiveExecution], None] | None = None, database: str | None = None) -> int:
    """Run `source`, copying its output to `output` as it arrives; the exit status the command exits with.
    A `WorkbenchError` for what the command reports as an error (timed out, could not start)."""
    languages.get(language, settings)  # bad language (the project's [languages] too): fail before starting
    with WorkSession.open(project, settings=settings, details={"command": "exec"},
                          open_sandbox=open_sandbox) as work:
        # A language's apt packages install on its first use: say so, or the wait looks like a hang.
        work.bus.subscribe(lambda event: output.say(installing_line(event.payload, language)),
                           kinds=[events.PACKAGE_INSTALL_STARTED])
        sandbox = work.sandbox
        if not sandbox.info.limits_enforced:
            output.say(NOT_ENFORCED)
        execution = sandbox.execute(language, source, timeout=timeout, session=session, database=database)
        if started is not None:
            started(execution)
        try:
            for chunk in execution:
                (output.stdout if chunk.stream == "stdout" else output.stderr)(chunk.data)
        except KeyboardInterrupt:
            execution.cancel()
        result = execution.result()
    return conclude(result, settings, output)


def conclude(result: ExecutionResult, settings: Settings, output: Output) -> int:
    """What the command says after the code ended, and the status it exits with."""
    if result.state_lost:
        output.say(f"workbench: note: session {result.session!r} was restarted; its state was lost")
    if result.timed_out:
        raise ExecutionTimedOut(f"timed out after {result.duration:.1f} s; the code was killed",
                                "raise --timeout or sandbox.timeout")
    if result.exit_code is None:
        reason = "; ".join(result.notes) or "the engine did not report an exit status"
        raise ExecutionNotStarted(reason)
    if result.killed_by == "oom":
        output.say(f"workbench: killed: out of memory (limit {settings.sandbox.memory})")
    elif result.killed_by == "user":
        output.say("workbench: interrupted")
    for stream in (result.stdout, result.stderr):
        if stream.truncated:
            output.say(f"workbench: note: output beyond {len(stream.kept)} bytes was not kept "
                       f"({stream.total_bytes} bytes, sha256 {stream.sha256[:16]}...)")
    return result.exit_code
