"""The heartbeat scheduler inside the TUI, and the rule that keeps its runs apart from the user's.

While the TUI is open it runs the project's scheduler in-process, unless another scheduler (a
`workbench heartbeat run` process, or another TUI) holds the project's lock; then it only shows the
schedules. Nothing here imports Textual: the main screen calls it from thread workers.

The rule for collisions is one run at a time, through `RunGate`:
- a scheduled run that comes due while the user's agent task runs waits for it to finish, then runs
  (in its own work session with actor `heartbeat:<name>`, as `run_schedule` opens one);
- a task the user starts while a scheduled run is in progress waits for that run (the Output pane says
  so; ctrl+s gives up waiting); code run directly and package installs are refused until it is over;
- on quit, a scheduled run still waiting for the gate is not started (recorded as skipped), and one in
  progress is waited for, bounded: the lock is released either way.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.scheduler import (
    Clock,
    Runner,
    RunOutcome,
    Scheduler,
    SchedulerLock,
    SystemClock,
    run_forever,
)
from workbench.heartbeat.store import ScheduleStore
from workbench.project import Project

FAILED = ("failed", "timed-out", "error")


@dataclass(frozen=True)
class ScheduleRow:
    """One line of the Schedules view: the schedule, its next fire time and its last run."""

    name: str
    cron: str
    timezone: str
    kind: str
    paused: bool
    next_run: datetime | None
    last_run_id: int | None = None
    last_started: datetime | None = None
    last_outcome: str | None = None
    last_detail: str = ""

    @property
    def failed(self) -> bool:
        return self.last_outcome in FAILED


def read_schedules(project: Project, now: datetime) -> list[ScheduleRow]:
    """Every schedule of the project with its next run and last run (opens and closes the store)."""
    store = ScheduleStore(project.state_db)
    try:
        rows = []
        for schedule in store.all():
            last = store.last_run(schedule.name)
            next_run = None if schedule.paused else schedule.next_after(max(now, store.anchor(schedule.name)))
            rows.append(ScheduleRow(schedule.name, schedule.cron, schedule.timezone, schedule.kind,
                                    schedule.paused, next_run,
                                    last.id if last else None, last.started if last else None,
                                    last.outcome if last else None, last.detail if last else ""))
        return rows
    finally:
        store.close()


def set_paused(project: Project, name: str, paused: bool, now: datetime) -> None:
    store = ScheduleStore(project.state_db)
    try:
        store.set_paused(name, paused, now)
    finally:
        store.close()


class RunGate:
    """One run at a time: the user's agent task and scheduled runs take turns (see the module's rule)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holder: str | None = None  # who runs now, for the messages

    def try_acquire(self, who: str) -> bool:
        if self._lock.acquire(blocking=False):
            self.holder = who
            return True
        return False

    def acquire(self, who: str, stop: threading.Event, on_wait: Callable[[str], None] = lambda _: None,
                poll: float = 0.1) -> bool:
        """Wait for the gate until `stop` is set; `on_wait(holder)` is called once if there is a wait."""
        if self.try_acquire(who):
            return True
        on_wait(self.holder or "another run")
        while not stop.is_set():
            if self._lock.acquire(timeout=poll):
                self.holder = who
                return True
        return False

    def release(self) -> None:
        self.holder = None
        self._lock.release()

    @contextmanager
    def hold(self, who: str, stop: threading.Event,
             on_wait: Callable[[str], None] = lambda _: None) -> Iterator[bool]:
        got = self.acquire(who, stop, on_wait)
        try:
            yield got
        finally:
            if got:
                self.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()


class HeartbeatHost:
    """The project's scheduler, run on a thread of the TUI while the lock is held.

    `on_start(schedule)` is called when a scheduled run gets the gate, `on_wait(schedule, holder)` when
    it has to wait for the user, `on_run(schedule, outcome)` when it has finished (all on the scheduler's
    thread: hand them to the UI as messages). `watch`, when given, is passed to the runner, which hands it
    the run's event bus (see `heartbeat.runner`): that is how the run's output reaches the panes live.
    """

    def __init__(self, project: Project, runner: Runner, gate: RunGate, clock: Clock | None = None,
                 on_start: Callable[[Schedule], None] = lambda _: None,
                 on_wait: Callable[[Schedule, str], None] = lambda _s, _h: None,
                 on_run: Callable[[Schedule, RunOutcome], None] = lambda _s, _o: None,
                 watch: Callable[..., Any] | None = None) -> None:
        self.project, self.gate = project, gate
        self.runner: Runner = functools.partial(runner, watch=watch) if watch is not None else runner
        self.clock = clock or SystemClock()
        self.on_start, self.on_wait, self.on_run = on_start, on_wait, on_run
        self.lock = SchedulerLock(project)
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.running: str | None = None  # the schedule being run now
        self.loop_started = False
        self._release = threading.Lock()

    def acquire(self) -> None:
        """Take the project's scheduler lock without waiting; raises `LockHeld` when another has it."""
        self.lock.acquire()

    def run(self) -> None:
        """The scheduler loop, until `stop` is set; releases the lock when it ends."""
        self.loop_started = True
        try:
            scheduler = Scheduler(self.project, self._gated, self.clock, self.on_run)
            try:
                run_forever([scheduler], self.stop, self.clock)
            finally:
                scheduler.close()
        finally:
            self.release()
            self.finished.set()

    def run_now(self, name: str) -> RunOutcome:
        """Run one schedule now (the caller holds the lock: it is this process's scheduler)."""
        scheduler = Scheduler(self.project, self._gated, self.clock, self.on_run)
        try:
            return scheduler.run_now(name)
        finally:
            scheduler.close()

    def _gated(self, project: Project, schedule: Schedule, due: datetime) -> RunOutcome:
        with self.gate.hold(f"schedule {schedule.name}", self.stop,
                            lambda holder: self.on_wait(schedule, holder)) as got:
            if not got:
                return RunOutcome("skipped", None, None, "not started: the TUI was closed while it waited")
            self.running = schedule.name
            self.on_start(schedule)
            try:
                return self.runner(project, schedule, due)
            finally:
                self.running = None

    def shutdown(self, timeout: float) -> bool:
        """Stop the loop, wait up to `timeout` s for it (a run in progress is not interrupted), release
        the lock. True when the loop ended in time."""
        self.stop.set()
        ended = self.finished.wait(timeout) if self.loop_started else True
        self.release()
        return ended

    def release(self) -> None:
        with self._release:
            self.lock.release()
