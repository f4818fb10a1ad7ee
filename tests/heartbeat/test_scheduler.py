"""The scheduler's logic with a controllable clock: no real waiting."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workbench.errors import UsageError
from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.scheduler import (
    LockHeld,
    RunOutcome,
    Scheduler,
    SchedulerLock,
    due_runs,
    run_forever,
)
from workbench.heartbeat.store import ScheduleStore


class FakeClock:
    def __init__(self, start: datetime):
        self.moment = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta) -> None:
        self.moment += timedelta(**delta)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.slept.append(seconds)
        self.moment += timedelta(seconds=seconds)


class RecordingRunner:
    def __init__(self, clock: FakeClock | None = None, outcome: str = "succeeded", takes: float = 0):
        self.calls: list[tuple[str, datetime]] = []
        self.clock, self.outcome, self.takes = clock, outcome, takes
        self.running = 0
        self.max_running = 0

    def __call__(self, project, schedule, due):
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.calls.append((schedule.name, due))
        if self.clock and self.takes:
            self.clock.advance(seconds=self.takes)
        self.running -= 1
        return RunOutcome(self.outcome, 0 if self.outcome == "succeeded" else 1, "sess", "")


def script(name="nightly", cron="0 2 * * *", tz="UTC", **kw) -> Schedule:
    return Schedule(name=name, cron=cron, timezone=tz, kind="script", language="python", code="print(1)", **kw)


T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def test_invalid_cron_and_zone_are_clear_errors():
    with pytest.raises(UsageError, match="invalid cron"):
        script(cron="61 * * * *")
    with pytest.raises(UsageError, match="invalid cron"):
        script(cron="* * *")
    with pytest.raises(UsageError, match="unknown time zone"):
        script(tz="Mars/Olympus")


def test_due_time_across_spring_forward():
    # 02:30 does not exist in Berlin on 2026-03-29: the run happens at the first valid minute, once.
    schedule = script(cron="30 2 * * *", tz="Europe/Berlin")
    start = datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    first = schedule.next_after(start)
    second = schedule.next_after(first)
    assert first.isoformat() == "2026-03-29T03:00:00+02:00"
    assert second.isoformat() == "2026-03-30T02:30:00+02:00"


def test_due_time_across_fall_back_runs_once():
    # 02:30 happens twice in Berlin on 2026-10-25; a daily job runs once that day.
    schedule = script(cron="30 2 * * *", tz="Europe/Berlin")
    start = datetime(2026, 10, 24, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    fires = [schedule.next_after(start)]
    for _ in range(2):
        fires.append(schedule.next_after(fires[-1]))
    days = [f.astimezone(ZoneInfo("Europe/Berlin")).date().isoformat() for f in fires]
    assert days == ["2026-10-25", "2026-10-26", "2026-10-27"]
    gaps = {(b - a).total_seconds() / 3600 for a, b in zip(fires, fires[1:], strict=False)}
    assert gaps <= {24.0, 25.0}


def test_weekday_schedule_in_a_zone():
    schedule = script(cron="0 7 * * 1-5", tz="America/New_York")
    friday_evening = datetime(2026, 11, 27, 20, 0, tzinfo=ZoneInfo("America/New_York"))
    assert schedule.next_after(friday_evening).isoformat() == "2026-11-30T07:00:00-05:00"


def test_runs_when_due_and_not_before(project):
    clock = FakeClock(T0)
    store = ScheduleStore(project.state_db)
    store.add(script(), clock.now())
    runner = RecordingRunner()
    scheduler = Scheduler(project, runner, clock)
    assert scheduler.tick() == []
    assert scheduler.seconds_until_next() == 60.0  # capped, so new schedules are seen
    clock.advance(hours=2)
    assert scheduler.tick() == [("nightly", "succeeded")]
    assert runner.calls == [("nightly", datetime(2026, 11, 26, 2, 0, tzinfo=UTC))]
    assert scheduler.tick() == []  # not twice for the same fire time
    assert store.last_run("nightly").outcome == "succeeded"


def test_missed_runs_run_once_policy(project):
    clock = FakeClock(T0)
    ScheduleStore(project.state_db).add(script(cron="0 * * * *", missed="run-once"), clock.now())
    runner = RecordingRunner()
    scheduler = Scheduler(project, runner, clock)
    clock.advance(hours=10, minutes=30)  # the laptop slept through ten hourly fire times
    assert scheduler.tick() == [("nightly", "succeeded")]
    assert len(runner.calls) == 1
    assert runner.calls[0][1] == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert "10 missed fire times" in scheduler.store.last_run("nightly").detail


def test_missed_runs_skip_policy(project):
    clock = FakeClock(T0)
    ScheduleStore(project.state_db).add(script(cron="0 * * * *", missed="skip"), clock.now())
    runner = RecordingRunner()
    scheduler = Scheduler(project, runner, clock)
    clock.advance(hours=10, minutes=30)
    assert scheduler.tick() == [("nightly", "skipped")]
    assert runner.calls == []
    clock.advance(minutes=31)  # 11:01: the 11:00 fire is only a minute late: it runs
    assert scheduler.tick() == [("nightly", "succeeded")]


def test_paused_schedule_does_not_run_and_resume_does_not_make_up(project):
    clock = FakeClock(T0)
    store = ScheduleStore(project.state_db)
    store.add(script(cron="0 * * * *"), clock.now())
    store.set_paused("nightly", True, clock.now())
    runner = RecordingRunner()
    scheduler = Scheduler(project, runner, clock)
    clock.advance(hours=5)
    assert scheduler.tick() == []
    store.set_paused("nightly", False, clock.now())
    assert scheduler.tick() == []
    clock.advance(hours=1)
    assert scheduler.tick() == [("nightly", "succeeded")]


def test_no_overlap_when_a_run_outlasts_its_interval(project):
    clock = FakeClock(T0)
    ScheduleStore(project.state_db).add(script(cron="* * * * *"), clock.now())
    runner = RecordingRunner(clock, takes=150)  # each run takes 2.5 minutes on an every-minute schedule
    scheduler = Scheduler(project, runner, clock)
    stop = threading.Event()

    def stop_after_some(schedule, outcome):
        if len(runner.calls) >= 4:
            stop.set()

    scheduler.on_run = stop_after_some
    clock.advance(minutes=1)
    run_forever([scheduler], stop, clock)
    assert runner.max_running == 1
    dues = [due for _, due in runner.calls]
    assert dues == sorted(dues) and len(set(dues)) == len(dues)


def test_failing_and_timed_out_runs_are_recorded(project):
    clock = FakeClock(T0)
    store = ScheduleStore(project.state_db)
    store.add(script(name="fails", cron="0 * * * *"), clock.now())
    store.add(script(name="slow", cron="0 * * * *"), clock.now())

    def runner(project, schedule, due):
        if schedule.name == "fails":
            return RunOutcome("failed", 1, "s1", "exit 1: ValueError")
        return RunOutcome("timed-out", None, "s2", "stopped after the 5 s timeout")

    scheduler = Scheduler(project, runner, clock)
    clock.advance(hours=1)
    assert sorted(scheduler.tick()) == [("fails", "failed"), ("slow", "timed-out")]
    assert store.last_run("fails").detail == "exit 1: ValueError"
    assert store.last_run("slow").outcome == "timed-out"


def test_runner_exception_is_recorded_not_raised(project):
    clock = FakeClock(T0)
    ScheduleStore(project.state_db).add(script(cron="0 * * * *"), clock.now())

    def broken(project, schedule, due):
        raise RuntimeError("engine vanished")

    scheduler = Scheduler(project, broken, clock)
    clock.advance(hours=1)
    assert scheduler.tick() == [("nightly", "error")]
    assert "engine vanished" in scheduler.store.last_run("nightly").detail


def test_lock_contention_in_process(project):
    first = SchedulerLock(project)
    first.acquire()
    with pytest.raises(LockHeld, match="another scheduler"):
        SchedulerLock(project).acquire()
    first.release()
    with SchedulerLock(project) as again:
        assert again.held


def test_lock_contention_across_processes(project):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from workbench.project import Project; "
         "from workbench.heartbeat.scheduler import SchedulerLock; "
         f"l = SchedulerLock(Project.open({str(project.root)!r})); l.acquire(); print('held', flush=True); "
         "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=str(holder.pid)):
            SchedulerLock(project).acquire()
    finally:
        holder.kill()
        holder.wait()
    SchedulerLock(project).acquire()  # the dead holder's lock is gone with it


def test_due_runs_orders_by_time(project):
    store = ScheduleStore(project.state_db)
    store.add(script(name="late", cron="30 1 * * *"), T0)
    store.add(script(name="early", cron="0 1 * * *"), T0)
    due = due_runs(store, T0 + timedelta(hours=2))
    assert [d.schedule.name for d in due] == ["early", "late"]


def test_store_survives_reopen(project):
    store = ScheduleStore(project.state_db)
    store.add(script(), T0)
    store.close()
    again = ScheduleStore(project.state_db)
    assert [s.name for s in again.all()] == ["nightly"]
    with pytest.raises(UsageError, match="exists already"):
        again.add(script(), T0)


def test_hourly_schedule_keeps_its_rhythm_through_fall_back():
    schedule = script(cron="0 * * * *", tz="Europe/Berlin")
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    first = schedule.next_after(start)
    second = schedule.next_after(first)
    assert (second - first) == timedelta(hours=1)
