"""The TUI's one seam to the core: opening sessions, doctor, reading the audit log, running the agent.

Every method here blocks (engine, sqlite, model), so the app calls them only from thread workers. Tests
pass a subclass with fakes; the defaults call the real core. Nothing here imports Textual.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import events
from workbench.config import Settings
from workbench.doctor import DoctorReport, run_doctor
from workbench.events import Event
from workbench.heartbeat.scheduler import LockHeld as LockHeld  # screens catch it: a scheduler runs elsewhere
from workbench.project import Project

Approve = Callable[[Any], bool]


@dataclass(frozen=True)
class TrustView:
    """What the trust dialog and the status bar show (workbench.trust)."""

    trusted: bool
    reason: str
    root: str
    changes: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class SessionRow:
    id: str
    first_time: datetime
    last_time: datetime
    entries: int
    actors: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntryRow:
    seq: int
    time: datetime
    kind: str
    session_id: str
    actor: str
    summary: str


@dataclass(frozen=True)
class AuditSummary:
    """What the audit panel shows: verification, key fingerprint, sessions and recent entries."""

    ok: bool | None  # None: not verified (yet)
    entries: int
    fingerprint: str = ""
    error: str | None = None
    sessions: tuple[SessionRow, ...] = ()
    recent: tuple[EntryRow, ...] = ()
    key_warning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def action_payload(action: Any) -> dict[str, Any]:
    """An agent action as the plain dict its `llm.action` event carries (what the approval dialog shows)."""
    from workbench.agent.actions import to_payload

    return to_payload(action)


def summarize_payload(kind: str, payload: dict[str, Any]) -> str:
    """A short one-line description of an entry's payload for the audit table."""
    typed = events.decode(kind, payload)  # through the event contract: any version, never raises
    if isinstance(typed, events.ExecOutput):
        return f"{typed.stream or '?'}: {len(typed.text)} chars"
    if isinstance(typed, events.ExecStarted):
        first = next((line for line in typed.code.splitlines() if line.strip()), "")
        return f"{typed.language or '?'}: {first}"[:80]
    if isinstance(typed, events.ExecFinished):
        return f"exit {typed.exit_code} in {typed.duration or 0.0:.2f}s"
    for key in ("task", "thought", "answer", "message", "path", "outcome", "trigger"):
        if payload.get(key):
            return str(payload[key]).replace("\n", " ")[:80]
    return ", ".join(sorted(payload))[:80]


def human_size(size: int) -> str:
    """Bytes as `workbench model list` shows them (for the model picker)."""
    from workbench.agent.models import human_size as shown

    return shown(size)


class Services:
    """The real core. Subclass and override for tests; `open_llm` swaps the model (a scripted one),
    `heartbeat_runner` and `heartbeat_clock` what the in-process scheduler runs schedules with and when."""

    def __init__(self, open_llm: Any = None, heartbeat_runner: Any = None, heartbeat_clock: Any = None):
        from workbench.tui.agent_adapter import AgentRunner

        self.agent = AgentRunner(open_llm)
        self.heartbeat_runner = heartbeat_runner
        self.heartbeat_clock = heartbeat_clock

    def open_session(self, project: Project, settings: Settings) -> Any:
        from workbench.session import WorkSession

        return WorkSession.open(project, settings=settings, trigger="tui")

    def doctor(self, settings: Settings, root: Path) -> DoctorReport:
        return run_doctor(settings, root)

    def trust_view(self, project: Project) -> TrustView:
        from workbench import trust

        state = trust.state(project)
        ignored: list[str] = []
        if not state.trusted:
            try:
                ignored = project.settings_and_ignored()[1]
            except Exception as exc:  # a broken config is shown by the settings error screen already
                ignored = [f"(the config cannot be read: {exc})"]
        return TrustView(state.trusted, state.reason, str(project.root), state.changes, tuple(ignored),
                         state.schedules if not state.trusted else (), state.problem)

    def trust(self, project: Project) -> None:
        from workbench import trust

        trust.trust(project)

    def _with_log(self, project: Project, session: Any, use: Callable[[Any], Any]) -> Any:
        audit = getattr(session, "audit", None) if session is not None else None
        if audit is not None:
            return use(audit)
        from workbench.audit import AuditLog

        with AuditLog.open(project) as log:
            return use(log)

    def audit_summary(self, project: Project, session: Any = None, verify: bool = False,
                      recent: int = 60) -> AuditSummary:
        def read(log: Any) -> AuditSummary:
            sessions = tuple(SessionRow(s.id, s.first_time, s.last_time, s.entries, tuple(s.actors))
                             for s in log.sessions())
            size = log.size()
            rows = []
            if size:
                for entry in log.entries(from_seq=max(0, size - recent)):  # the tail only, whatever the size
                    rows.append(EntryRow(entry.seq, entry.time, entry.kind, entry.session_id, entry.actor,
                                         summarize_payload(entry.kind, entry.payload)))
            # Read the key without creating it: the session's own checkpoint creates it, and two threads
            # creating the key at once race in the key store (reported to the audit owner).
            store = getattr(log, "key_store", None)
            info = store.info(create=False) if store is not None else log.key_info()
            ok, error = None, None
            if verify:
                result = log.verify()
                ok = bool(result.ok)
                error = None if result.ok else str(getattr(result, "first_error", "") or "verification failed")
            return AuditSummary(ok, size, info.fingerprint if info else "", error, sessions,
                                tuple(rows[-recent:]), info.warning() if info else None)

        return self._with_log(project, session, read)

    def audit_events_from(self, project: Project, from_seq: int, session: Any = None,
                          actor_prefix: str | tuple[str, ...] = "") -> tuple[int, list[Event]]:
        """(the log's size, its events from `from_seq` on whose actor starts with `actor_prefix` (or one of
        them))."""
        def read(log: Any) -> tuple[int, list[Event]]:
            size = log.size()
            found = [Event(kind=e.kind, session_id=e.session_id, actor=e.actor, payload=e.payload, user=e.user,
                           time=e.time, id=e.event_id or str(e.seq))
                     for e in log.entries(from_seq=from_seq) if e.actor.startswith(actor_prefix)]
            return size, found

        return self._with_log(project, session, read)

    def audit_size(self, project: Project, session: Any = None) -> int:
        """How many entries the log holds now (one indexed query; other processes' appends included)."""
        return int(self._with_log(project, session, lambda log: log.size()))

    def session_events(self, project: Project, session_id: str, session: Any = None) -> list[Event]:
        def read(log: Any) -> list[Event]:
            return [Event(kind=e.kind, session_id=e.session_id, actor=e.actor, payload=e.payload, user=e.user,
                          time=e.time, id=e.event_id or str(e.seq))
                    for e in log.entries(session=session_id) if e.kind != "exec.output"]

        return self._with_log(project, session, read)

    def run_agent(self, session: Any, task: str, approve: Approve, stop: threading.Event,
                  on_status: Callable[[str], None] = lambda _: None) -> Any:
        return self.agent.run(session, task, approve, stop, on_status)

    def close(self) -> None:
        self.agent.close()

    def execute(self, session: Any, language: str, code: str) -> Any:
        """Run code typed by the user; events reach the UI through the bus like the agent's."""
        return session.sandbox.execute(language, code)

    def install(self, session: Any, manager: str, packages: list[str]) -> Any:
        return session.sandbox.install(manager, packages)

    # --- approvals other processes ask for (workbench.approvals) ---------------------------------------
    def approval_listener(self, project: Project, decide: Callable[[Any, threading.Event], bool | None],
                          on_state: Callable[[str], None] = lambda _: None) -> Any:
        """The listener the TUI runs while open: `decide(request, gone)` is called on its thread for each
        request (`request.action()` is what the dialog shows), `on_state(state)` when it starts listening,
        finds another TUI listening ("elsewhere") or cannot ("off: why"); `start()`, then `closed.set()`."""
        from workbench import approvals

        return approvals.Listener(project.root, decide, events.current_user(), on_state)

    # --- what the pickers offer: the registries (workbench.languages, the package managers) -----------
    def languages(self, settings: Settings) -> list[tuple[str, str]]:
        """(name, highlighter name) of each language the project runs: built-ins, plug-ins, [languages]."""
        from workbench import languages

        return [(language.name, language.highlight) for language in languages.for_settings(settings).items()]

    def managers(self) -> list[str]:
        from workbench.agent.actions import manager_names

        return list(manager_names())

    def install_reach(self, settings: Settings, manager: str) -> str:
        """Where an install with `manager` may reach, in words (a WorkbenchError for a bad allow_hosts)."""
        from workbench.sandbox.managers import reachable

        return reachable(settings, manager)

    def code_reach(self, project: Project) -> str:
        """What the project's code may reach under its network policy, in `workbench doctor -p`'s words
        (a WorkbenchError for a broken rule)."""
        from workbench.network.reach import reach

        return reach(project.root)

    # --- memory: the user's notes (the same MemoryStore the agent and `workbench memory` use) ---------
    def memory(self, project: Project, session: Any = None) -> Any:
        """The project's memory; with a session, its writes and searches go to the audit log. Close it."""
        from workbench.memory import MemoryStore

        if session is not None:
            return MemoryStore.for_session(session)
        return MemoryStore.for_project(project)

    def _with_memory(self, project: Project, session: Any, use: Callable[[Any], Any]) -> Any:
        store = self.memory(project, session)
        try:
            return use(store)
        finally:
            store.close()

    def add_note(self, project: Project, session: Any, text: str, title: str | None = None,
                 tags: tuple[str, ...] = ()) -> Any:
        return self._with_memory(project, session, lambda store: store.add(text, title=title, tags=tags))

    def search_notes(self, project: Project, session: Any, query: str, k: int = 10) -> list[tuple[Any, float]]:
        return self._with_memory(project, session, lambda store: store.search(query, k=k))

    def list_notes(self, project: Project, session: Any = None) -> list[Any]:
        return self._with_memory(project, session, lambda store: store.list())

    def remove_note(self, project: Project, session: Any, note_id: str) -> Any:
        return self._with_memory(project, session, lambda store: store.remove(note_id))

    def reindex_notes(self, project: Project, session: Any = None) -> None:
        """Pick up hand edits: opening the store re-indexes what changed on disk (a `memory.reindexed` event)."""
        self._with_memory(project, session, lambda store: None)

    def model_choices(self, settings: Settings) -> Any:
        """Model servers answering on loopback, then GGUF files (`workbench.agent.discovery.Discovery`)."""
        from workbench.agent import discovery

        return discovery.find_all(settings.model.models_dir or None)

    def use_model_choice(self, project: Project, choice: Any) -> None:
        """A server's model becomes the project's OpenAI-compatible endpoint; a file its `[model] path`."""
        from workbench.agent import models

        if choice.endpoint:
            models.use_endpoint(project.config_file, choice.endpoint, choice.endpoint_model)
        else:
            models.use(project.config_file, Path(choice.path))

    # --- heartbeat: schedules and the in-process scheduler --------------------------------------------
    def now(self) -> datetime:
        clock = self.heartbeat_clock
        return clock.now() if clock is not None else datetime.now(UTC)

    def schedules(self, project: Project) -> list[Any]:
        from workbench.tui.heartbeat_host import read_schedules

        return read_schedules(project, self.now())

    def set_schedule_paused(self, project: Project, name: str, paused: bool) -> None:
        from workbench.tui.heartbeat_host import set_paused

        set_paused(project, name, paused, self.now())

    def heartbeat_host(self, project: Project, gate: Any, **callbacks: Any) -> Any:
        """The scheduler the TUI runs while it is open (it still has to take the project's lock)."""
        from workbench.tui.heartbeat_host import HeartbeatHost

        runner = self.heartbeat_runner
        if runner is None:
            from workbench.heartbeat.runner import run_schedule as runner
        return HeartbeatHost(project, runner, gate, self.heartbeat_clock, **callbacks)
