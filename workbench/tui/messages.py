"""Messages that carry work done on threads to the UI. High-rate ones coalesce (`can_replace`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message

from workbench.events import Event


@dataclass
class Invoke(Message):
    """Run `callback` on the UI thread. Posting never blocks, unlike `App.call_from_thread`, which waits
    forever if the app has already stopped (a worker finishing during quit would hang)."""

    callback: Callable[[], Any]


class OutputPending(Message):
    """New output is waiting in the bridge's buffer; the handler drains all of it at once."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OutputPending)


class FilesChanged(Message):
    """Something under the workspace changed (watchdog); many changes coalesce into one reload."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FilesChanged)


@dataclass
class BusEvent(Message):
    """Any event other than `exec.output`, as published on the session's bus."""

    event: Event


@dataclass
class FollowedEvents(Message):
    """Events of scheduled runs made by another process, read from the audit log as they are appended."""

    events: tuple[Event, ...]


@dataclass
class SessionReady(Message):
    """A work session is open (or failed to open: `error` set)."""

    session: Any | None
    error: str | None = None
    hint: str | None = None


@dataclass
class EnvironmentChecked(Message):
    """Doctor's findings, for the status bar and the error screen."""

    report: Any


@dataclass
class AuditLoaded(Message):
    """Audit summary read on a thread (entries, sessions, verification)."""

    summary: Any


@dataclass
class SessionReplay(Message):
    """The events of an earlier session, read back from the audit log."""

    session_id: str
    events: list[Event]


@dataclass
class SchedulesLoaded(Message):
    """The project's schedules with their next and last runs, read on a thread."""

    rows: list[Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SchedulesLoaded)


@dataclass
class SchedulerState(Message):
    """The in-process scheduler: "on" (this TUI holds the lock), "elsewhere" (`holder` has it), "off"."""

    state: str
    holder: str = ""
    detail: str = ""


@dataclass
class ScheduleProgress(Message):
    """A scheduled run started ("running") or waits for the user's work ("waiting", `holder` is it)."""

    name: str
    state: str
    holder: str = ""


@dataclass
class ScheduleRan(Message):
    """A scheduled run finished in this process."""

    name: str
    outcome: Any


@dataclass
class TrustChecked(Message):
    """The project's trust (workbench.trust), read on a thread; `ask`: show the dialog when restricted."""

    view: Any
    ask: bool = True
