"""The heartbeat in the TUI, driven with the Pilot: the Schedules view, the failure warning in the status
bar, the in-process scheduler and its lock, palette actions, and the turn-taking with the user's task.

Schedules are real rows in the test project's state.db (`ScheduleStore`); the runner is a `FakeRunner`,
so nothing waits for a real cron time: a schedule anchored in the past is due as soon as the app opens.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import pytest

from workbench.heartbeat.schedule import Schedule
from workbench.heartbeat.scheduler import LockHeld, SchedulerLock
from workbench.heartbeat.store import ScheduleStore
from workbench.tui.screens.schedules import SchedulesScreen
from workbench.tui.widgets.status_bar import StatusBar

from .conftest import SIZE, aio, settle
from .fakes import FakeRunner, FakeServices


def add(project, name="nightly", cron="0 2 * * *", anchored=None, **kw) -> Schedule:
    schedule = Schedule(name=name, cron=cron, timezone="Europe/Berlin", kind="script", language="python",
                        code="print(1)", **kw)
    store = ScheduleStore(project.state_db)
    try:
        store.add(schedule, anchored or datetime.now(UTC))
    finally:
        store.close()
    return schedule


def record(project, name, outcome, detail="") -> None:
    store = ScheduleStore(project.state_db)
    try:
        now = datetime.now(UTC)
        run = store.start_run(name, now, now)
        store.finish_run(run, now, outcome, 1, None, detail)
    finally:
        store.close()


def lock_free(project) -> bool:
    lock = SchedulerLock(project)
    try:
        lock.acquire()
    except LockHeld:
        return False
    lock.release()
    return True


def bar(app) -> StatusBar:
    return app.screen_stack[0].query_one(StatusBar)


def bar_text(app) -> str:
    return str(bar(app).render())


async def palette(pilot, command: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.press(*command)
    await pilot.pause(0.3)
    await pilot.press("enter")


@aio
async def test_schedules_view_lists_a_schedule_with_its_next_run(make, demo):
    schedule = add(demo)
    expected = schedule.next_after(datetime.now(UTC)).astimezone().strftime("%a %Y-%m-%d %H:%M")
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.schedule_rows is not None)
        await pilot.press("f7")
        await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        table = app.screen.query_one("#schedules-table")
        assert table.row_count == 1
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row == ["nightly", "0 2 * * * (Europe/Berlin)", expected, "-", "never run"]
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, SchedulesScreen))
        assert "scheduler: next nightly" in bar_text(app)


@aio
async def test_a_failed_last_run_shows_in_the_status_bar_until_the_schedules_are_seen(make, demo):
    add(demo)
    add(demo, name="hourly", cron="0 * * * *")
    record(demo, "nightly", "failed", "exit 1: boom")
    record(demo, "hourly", "succeeded")
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: bar(app).alert == "⚠ 1 schedule failed: nightly")
        assert bar_text(app).startswith("⚠ 1 schedule failed: nightly")
        await palette(pilot, "Show schedules")
        await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        assert "boom" in str(app.screen.query_one("#schedules-detail").render())
        assert bar(app).alert == ""
        await pilot.press("escape")
        app.screen.load_schedules()  # a later read does not bring the same failure back
        await pilot.pause(0.3)
        assert bar(app).alert == ""


@aio
async def test_the_scheduler_runs_in_process_holds_the_lock_and_releases_it_on_quit(make, demo):
    add(demo, cron="* * * * *", anchored=datetime.now(UTC) - timedelta(minutes=3))
    runner = FakeRunner("failed", "exit 1: boom")
    app = make(services=FakeServices(runner=runner))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.scheduler_state == "on")
        assert not lock_free(demo)
        await settle(pilot, lambda: bar(app).alert == "⚠ 1 schedule failed: nightly")
        assert [name for name, _ in runner.calls] == ["nightly"]
        assert any("nightly failed" in n.message for n in app._notifications)
        host = app.screen.heartbeat
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    assert host.finished.wait(5)
    assert lock_free(demo)
    store = ScheduleStore(demo.state_db)
    assert [r.outcome for r in store.runs("nightly")] == ["failed"]
    store.close()


HOLDER = textwrap.dedent("""
    import sys
    from workbench.project import Project
    from workbench.heartbeat.scheduler import SchedulerLock
    lock = SchedulerLock(Project.open(sys.argv[1]))
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()
""")


@aio
async def test_with_the_lock_held_elsewhere_the_tui_says_so_and_runs_nothing(make, demo):
    add(demo, cron="* * * * *", anchored=datetime.now(UTC) - timedelta(minutes=3))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(demo.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        runner = FakeRunner()
        app = make(services=FakeServices(runner=runner))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.screen.scheduler_state == "elsewhere")
            await settle(pilot, lambda: f"scheduler: running elsewhere (pid {holder.pid})" in bar_text(app))
            await pilot.press("f7")
            await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
            await pilot.press("r")  # run now: refused, the other scheduler runs this project
            await pilot.pause(0.5)
            assert any("does not run the schedules" in n.message for n in app._notifications)
            assert runner.calls == []
            assert app.screen_stack[0].heartbeat is None
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert lock_free(demo)


@aio
async def test_pause_resume_and_run_now_from_the_palette(make, demo):
    add(demo)
    runner = FakeRunner()
    app = make(services=FakeServices(runner=runner))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.scheduler_state == "on" and app.screen.schedule_rows)
        await palette(pilot, "Pause or resume schedule")
        await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await pilot.press("enter")
        await settle(pilot, lambda: app.screen_stack[0].schedule_rows[0].paused)
        assert "scheduler: all paused" in bar_text(app)
        await pilot.press("f7")
        await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await settle(pilot, lambda: "paused" in [str(c) for c in app.screen.query_one("#schedules-table")
                                                 .get_row_at(0)])
        await pilot.press("p")
        await settle(pilot, lambda: not app.screen_stack[0].schedule_rows[0].paused)

        await palette(pilot, "Run schedule now")
        await settle(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await pilot.press("enter")
        await settle(pilot, lambda: app.screen_stack[0].schedule_rows[0].last_outcome == "succeeded")
        assert [name for name, _ in runner.calls] == ["nightly"]


class QuickClock:
    """The real time, but the scheduler looks for due runs every 50 ms instead of sleeping till the next."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(min(seconds, 0.05))


@aio
async def test_a_scheduled_run_waits_while_the_users_task_runs(make, demo):
    """The gate: a due run starts only after the user's work is done (and says that it waits)."""
    runner = FakeRunner()
    app = make(services=FakeServices(runner=runner, clock=QuickClock()))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot, lambda: screen.scheduler_state == "on")
        assert screen.gate.try_acquire("your task")  # as the agent worker does while the user's task runs
        add(demo, cron="* * * * *", anchored=datetime.now(UTC) - timedelta(minutes=3))
        await settle(pilot, lambda: "nightly waits for your task" in bar(app).heartbeat)
        assert runner.calls == []
        screen.gate.release()
        await settle(pilot, lambda: [name for name, _ in runner.calls] == ["nightly"])


@pytest.fixture
def hold():
    event = threading.Event()
    yield event
    event.set()


@aio
async def test_users_code_is_refused_while_a_scheduled_run_is_in_progress(make, demo, hold):
    add(demo, cron="* * * * *", anchored=datetime.now(UTC) - timedelta(minutes=3))
    runner = FakeRunner(hold=hold)
    app = make(services=FakeServices(runner=runner))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: runner.started.is_set() and app.screen.session is not None)
        await settle(pilot, lambda: "scheduler: running nightly" in bar(app).heartbeat)
        app.screen.execute("python", "print(1)")
        await settle(pilot, lambda: any("schedule nightly is running" in n.message for n in app._notifications))
        hold.set()
        await settle(pilot, lambda: not app.screen.gate.busy)


@aio
async def test_the_users_task_waits_for_a_scheduled_run_in_progress(make, demo, hold):
    add(demo, cron="* * * * *", anchored=datetime.now(UTC) - timedelta(minutes=3))
    runner = FakeRunner(hold=hold)
    finish = '{"thought": "nothing to do", "action": "finish", "answer": "done", "success": true}'
    services = FakeServices(runner=runner, replies=[finish])
    app = make(services=services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: runner.started.is_set() and app.screen.session is not None)
        seen = []
        services.sessions[0].bus.subscribe(seen.append)
        await pilot.press(*"say hello")
        await pilot.press("enter")
        await settle(pilot, lambda: any("waits for the schedule nightly" in line
                                        for line in app.screen.query_one("OutputPanel").lines))
        await pilot.pause(0.3)
        assert not any(e.kind == "task.started" for e in seen)
        hold.set()
        await settle(pilot, lambda: any(e.kind == "task.finished" for e in seen))
        await settle(pilot, lambda: not app.screen.agent_running)


def emits_a_run(bus, schedule) -> None:
    """What a scheduled script run puts on its bus: a start, two chunks of output, the finish."""
    def emit(kind, **payload):
        bus.emit(kind, "sched0000001", f"heartbeat:{schedule.name}", payload)

    emit("exec.started", execution_id="x1", language="python")
    emit("exec.output", execution_id="x1", stream="stdout", text="nightly says hello\n")
    emit("exec.output", execution_id="x1", stream="stderr", text="and warns\n")
    emit("exec.finished", execution_id="x1", exit_code=0, duration=0.5)


@aio
async def test_a_scheduled_run_streams_into_the_panes_and_the_users_next_work_replaces_it(make, demo):
    from workbench.tui.widgets.output_panel import OutputPanel
    from workbench.tui.widgets.steps_panel import StepsPanel

    add(demo, cron="* * * * *", anchored=datetime.now(UTC) - timedelta(minutes=3))
    runner = FakeRunner(script=emits_a_run)
    app = make(services=FakeServices(runner=runner, replies=[
        '{"thought": "done", "action": "finish", "summary": "ok"}']))
    async with app.run_test(size=SIZE) as pilot:
        output = app.screen.query_one(OutputPanel)
        steps = app.screen.query_one(StepsPanel)
        await settle(pilot, lambda: any("nightly says hello" in line for line in output.lines))
        assert any("and warns" in line for line in output.lines)
        assert any("heartbeat:nightly" in line for line in output.lines)  # whose output it is
        await settle(pilot, lambda: steps.border_title == "Steps · scheduled run nightly · succeeded")
        assert steps.count > 0
        await pilot.click("#task")
        await pilot.press(*"summarise", "enter")  # the user's own work takes the Steps pane back
        await settle(pilot, lambda: steps.border_title == "Steps")


@aio
async def test_runs_made_by_another_scheduler_are_followed_from_the_log(make, demo):
    from workbench.events import Event
    from workbench.tui.widgets.output_panel import OutputPanel
    from workbench.tui.widgets.steps_panel import StepsPanel

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(demo.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        services = FakeServices()
        app = make(services=services)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.screen.scheduler_state == "elsewhere")
            await pilot.pause(2.5)  # a first poll: what was in the log before is not replayed

            def ev(kind, **payload):
                return Event(kind, "elsewhere001", "heartbeat:nightly", payload)

            services.foreign = [ev("session.started", trigger="heartbeat:nightly"),
                                ev("exec.started", execution_id="x9", language="shell"),
                                ev("exec.output", execution_id="x9", stream="stdout", text="from the service\n"),
                                ev("exec.finished", execution_id="x9", exit_code=0, duration=0.2),
                                ev("session.finished")]
            output = app.screen.query_one(OutputPanel)
            steps = app.screen.query_one(StepsPanel)
            await settle(pilot, lambda: any("from the service" in line for line in output.lines), timeout=8)
            assert any("heartbeat:nightly" in line for line in output.lines)
            await settle(pilot, lambda: steps.border_title ==
                         "Steps · scheduled run nightly (run elsewhere) · finished")
            lines = len(output.lines)
            await pilot.pause(2.5)
            assert len(output.lines) == lines  # each event once, not again at the next poll
    finally:
        holder.stdin.close()
        holder.wait(10)
