"""A work session: one project, one event bus, the audit log listening, the sandbox on demand.

Every entry point (CLI command, TUI, heartbeat) opens one of these, so every event anyone publishes is
in the audit log, and the session's end is marked and checkpointed in one place.

    with WorkSession.open(project, actor="user:alice") as ws:
        execution = ws.sandbox.execute("python", "print(1)")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench import __version__, events
from workbench.config import Settings
from workbench.events import EventBus
from workbench.project import Project

if TYPE_CHECKING:
    from workbench.audit import AuditLog
    from workbench.sandbox import Sandbox

# How a session's sandbox is opened: `Sandbox.open`'s signature. The sandbox service passes its own, which
# reuses its engine connection and idle container (workbench.service.pool); the events are the same.
SandboxOpener = Callable[..., "Sandbox"]


class WorkSession:
    def __init__(self, project: Project, actor: str, settings: Settings, session_id: str,
                 bus: EventBus, audit: AuditLog | None, trigger: str):
        self.project = project
        self.actor = actor
        self.settings = settings
        self.session_id = session_id
        self.bus = bus
        self.audit = audit
        self.trigger = trigger
        self._sandbox: Sandbox | None = None
        self._closed = False
        self._detach: Callable[[], None] | None = None
        self._open_sandbox: SandboxOpener | None = None

    @classmethod
    def open(cls, project: Project, actor: str | None = None, *, settings: Settings | None = None,
             session_id: str | None = None, trigger: str | None = None, bus: EventBus | None = None,
             record: bool = True, details: dict[str, Any] | None = None,
             open_sandbox: SandboxOpener | None = None) -> WorkSession:
        """Open a session on `project`. With `record` (the default) every event goes to the audit log."""
        settings = settings or project.settings()
        bus = bus or EventBus()
        actor = actor or events.current_user()
        audit = None
        detach = None
        if record:
            from workbench.audit import AuditLog

            audit = AuditLog.open(project)
            detach = audit.attach(bus)
        session = cls(project, actor, settings, session_id or events.new_session_id(), bus, audit,
                      trigger or actor)
        session._detach = detach
        session._open_sandbox = open_sandbox
        started = {"trigger": session.trigger, "project": project.name, "project_id": project.id,
                   "workbench_version": __version__, **(details or {})}
        # A detail the contract does not declare is still recorded (as a dict the bus warns about, or
        # refuses under the test suite's strict contract), never dropped and never a crash here.
        session.emit(events.SESSION_STARTED, events.typed(events.SESSION_STARTED, started))
        return session

    def emit(self, kind: str, payload: events.Payload | dict[str, Any] | None = None,
             actor: str | None = None) -> events.Event:
        """Publish `kind` with its payload dataclass (see `workbench.events`) as this session's actor."""
        return self.bus.emit(kind, self.session_id, actor or self.actor, payload or {})

    @property
    def sandbox(self) -> Sandbox:
        """The project's sandbox, started on first use (it publishes on this session's bus)."""
        if self._sandbox is None:
            from workbench.sandbox import Sandbox

            opener = self._open_sandbox or Sandbox.open
            self._sandbox = opener(self.project, bus=self.bus, session_id=self.session_id,
                                   actor=self.actor, settings=self.settings)
        return self._sandbox

    @property
    def sandbox_started(self) -> bool:
        return self._sandbox is not None

    def close(self, outcome: str = "finished") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._sandbox is not None:
                self._sandbox.close()
        finally:
            self.emit(events.SESSION_FINISHED, events.SessionFinished(outcome=outcome))
            if self._detach is not None:
                self._detach()
            if self.audit is not None:
                self.audit.close()

    def __enter__(self) -> WorkSession:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("failed" if exc is not None else "finished")
