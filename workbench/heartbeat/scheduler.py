"""The scheduler: wake at the right times and run due schedules, one at a time per project.

Missed runs (the machine slept, or no scheduler ran) follow each schedule's policy:
- ``run-once``: however many fire times were missed, run once on waking;
- ``skip``: fire times more than `grace` late are recorded as skipped, not run.
A fire time less than `grace` late is simply run: that is ordinary lateness, not a missed run.

Runs never overlap: a project's schedules run one after another in the process that holds the
project's heartbeat lock, and a second scheduler on the same project is refused.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from workbench.errors import WorkbenchError
from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.store import ScheduleStore
from workbench.project import Project

GRACE = timedelta(minutes=5)
MAX_SLEEP = 60.0  # re-read schedules at least this often, so new ones are seen
MAX_MISSED_SCAN = 100_000


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float, stop: threading.Event) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(max(0.0, seconds))


@dataclass(frozen=True, slots=True)
class RunOutcome:
    outcome: str  # succeeded | failed | timed-out | error
    exit_code: int | None
    session_id: str | None
    detail: str


Runner = Callable[[Project, Schedule, datetime], RunOutcome]


class LockHeld(WorkbenchError):
    exit_code = 4

    holder: str = ""  # the pid written in the lock file by the process that holds it, when known


class UntrustedProject(WorkbenchError):
    exit_code = 2


class SchedulerLock:
    """An exclusive, non-blocking lock on the project's `.workbench/heartbeat.lock` (released on exit,
    also when the process dies)."""

    def __init__(self, project: Project):
        self.path: Path = project.state_dir / "heartbeat.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            error = LockHeld(f"another scheduler (pid {holder}) is running this project's heartbeat",
                             "stop it first, or leave it running: it will do the work")
            error.holder = holder if holder.isdigit() else ""
            raise error from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> SchedulerLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class DueRun:
    schedule: Schedule
    due: datetime
    missed: int  # fire times folded into this one
    skip: bool


def due_runs(store: ScheduleStore, now: datetime, grace: timedelta = GRACE) -> list[DueRun]:
    """The schedules due at `now`, earliest first, with what to do about missed fire times."""
    found = []
    for schedule in store.all():
        if schedule.paused:
            continue
        fire = schedule.next_after(store.anchor(schedule.name))
        if fire > now:
            continue
        count = 1
        for _ in range(MAX_MISSED_SCAN):
            following = schedule.next_after(fire)
            if following > now:
                break
            fire, count = following, count + 1
        late = now - fire
        skip = schedule.missed == "skip" and late > grace
        found.append(DueRun(schedule, fire, count, skip))
    return sorted(found, key=lambda d: d.due)


def next_wake(store: ScheduleStore, now: datetime) -> datetime | None:
    upcoming = [s.next_after(store.anchor(s.name)) for s in store.all() if not s.paused]
    return min(upcoming) if upcoming else None


class Scheduler:
    """Runs one project's due schedules. Hold the project's `SchedulerLock` while using it."""

    def __init__(self, project: Project, runner: Runner, clock: Clock | None = None,
                 on_run: Callable[[Schedule, RunOutcome], None] | None = None):
        self.project = project
        self.runner = runner
        self.clock = clock or SystemClock()
        self.store = ScheduleStore(project.state_db)
        self.on_run = on_run

    def tick(self) -> list[tuple[str, str]]:
        """Run whatever is due now; returns (schedule name, outcome) for each. The schedules of a project
        that is not trusted on this machine never run: each due run is recorded as skipped, saying why."""
        done = []
        due = due_runs(self.store, self.clock.now())
        untrusted = self.untrusted() if due else None
        for item in due:
            name = item.schedule.name
            if untrusted is not None:
                self.store.record_skipped(name, item.due, self.clock.now(), untrusted)
                done.append((name, "skipped"))
                continue
            if item.skip:
                self.store.record_skipped(name, item.due, self.clock.now(),
                                          f"{item.missed} run(s) missed while no scheduler ran; policy: skip")
                done.append((name, "skipped"))
                continue
            outcome = self._run(item.schedule, item.due, item.missed)
            done.append((name, outcome.outcome))
        return done

    def untrusted(self) -> str | None:
        """Why this project's schedules may not run (it is not trusted here), or None."""
        from workbench import trust

        state = trust.state(self.project)
        if state.trusted:
            return None
        return (f"not run: the project is not trusted on this machine ({state.reason}); "
                f"to trust it: workbench trust -p {self.project.root}")

    def run_now(self, name: str) -> RunOutcome:
        """Run one schedule now, whether due or not (paused too), recorded like a scheduled run."""
        refused = self.untrusted()
        if refused is not None:
            raise UntrustedProject(refused)
        schedule = self.store.get(name)
        return self._run(schedule, self.clock.now(), 1)

    def _run(self, schedule: Schedule, due: datetime, missed: int) -> RunOutcome:
        run_id = self.store.start_run(schedule.name, due, self.clock.now())
        try:
            outcome = self.runner(self.project, schedule, due)
        except Exception as exc:  # a broken run is recorded, never kills the scheduler
            outcome = RunOutcome("error", None, None, f"{type(exc).__name__}: {exc}")
        detail = outcome.detail
        if missed > 1:
            detail = f"{detail} ({missed} missed fire times folded into this run)".strip()
        self.store.finish_run(run_id, self.clock.now(), outcome.outcome, outcome.exit_code,
                              outcome.session_id, detail)
        if self.on_run is not None:
            self.on_run(schedule, outcome)
        return outcome

    def seconds_until_next(self) -> float:
        now = self.clock.now()
        wake = next_wake(self.store, now)
        if wake is None:
            return MAX_SLEEP
        return min(MAX_SLEEP, max(0.0, (wake - now).total_seconds()))

    def close(self) -> None:
        self.store.close()


def run_forever(schedulers: list[Scheduler], stop: threading.Event, clock: Clock | None = None) -> None:
    """The scheduler loop for one or more projects (each project's lock already held)."""
    clock = clock or SystemClock()
    while not stop.is_set():
        for scheduler in schedulers:
            if stop.is_set():
                break
            scheduler.tick()
        clock.sleep(min(s.seconds_until_next() for s in schedulers), stop)
