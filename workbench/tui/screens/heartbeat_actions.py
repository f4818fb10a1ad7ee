"""The main screen's heartbeat: the in-process scheduler, the Schedules view, the failure warning.

A mixin like `MemoryActions`. At mount, one thread worker takes the project's scheduler lock without
waiting and, when it gets it, runs the scheduler loop until the app quits (the lock is released when the
loop ends); when another process holds the lock, the status bar says so and this TUI runs nothing.
Schedules are read from SQLite on a thread worker at mount, every `REFRESH` seconds and after each run.
Scheduled runs and the user's own work take turns through `RunGate` (the rule is in `heartbeat_host`).
A scheduled run this TUI starts is shown live: its bus is relayed by the screen's `EventBridge` beside the
user's session, so its steps fill the Steps pane (titled with the schedule) and its output streams into
the Output pane under its actor, `heartbeat:<name>`; the user's next piece of work replaces the steps.
While another process runs the schedules (a service, another TUI), their runs are followed from the audit
log instead (the screen's `poll_audit`, every 2 s) and shown the same way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from textual import work

from workbench import events
from workbench.inert import one_line
from workbench.tui.bridge import output_piece
from workbench.tui.heartbeat_host import RunGate, ScheduleRow
from workbench.tui.messages import (
    BusEvent,
    FollowedEvents,
    ScheduleProgress,
    ScheduleRan,
    SchedulerState,
    SchedulesLoaded,
)
from workbench.tui.screens.schedules import ScheduleChoice, SchedulesScreen
from workbench.tui.services import LockHeld
from workbench.tui.widgets.status_bar import StatusBar
from workbench.tui.widgets.steps_panel import StepsPanel

REFRESH = 15.0  # seconds between reads of the schedules (a few rows from SQLite, on a thread)
QUIT_WAIT = 20.0  # seconds quitting waits for a scheduled run in progress


def failure_summary(rows: list[ScheduleRow], seen: dict[str, int | None]) -> str:
    """"⚠ 1 schedule failed: nightly" for failed last runs the analyst has not looked at yet."""
    failed = [r.name for r in rows if r.failed and seen.get(r.name) != r.last_run_id]
    if not failed:
        return ""
    names = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
    return f"⚠ {len(failed)} schedule{'s' if len(failed) > 1 else ''} failed: {names}"


class HeartbeatActions:
    """Mixed into MainScreen (which provides services, project, `later`, `notify` and `_schedule_audit`)."""

    def init_heartbeat(self) -> None:
        self.gate = RunGate()
        self.heartbeat: Any = None  # the HeartbeatHost while this TUI may hold the lock
        self.schedule_rows: list[ScheduleRow] | None = None  # None: not read yet
        self.scheduler_state = ""  # "" (starting) | "on" | "elsewhere" | "off"
        self.scheduler_holder = ""
        self.scheduler_detail = ""
        self.scheduled_activity = ""  # "running nightly" / "nightly waits for your task"
        self.seen_failures: dict[str, int | None] = {}
        self.following = ""  # the session of another process's scheduled run shown in the panes

    def start_heartbeat(self) -> None:
        self.load_schedules()
        self.run_scheduler()
        self.set_interval(REFRESH, self.load_schedules)

    # --- workers -----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="schedules")
    def load_schedules(self) -> None:
        self.post_message(SchedulesLoaded(self.services.schedules(self.project)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="heartbeat")
    def run_scheduler(self) -> None:
        host = self.services.heartbeat_host(
            self.project, self.gate,
            on_start=lambda schedule: self.post_message(ScheduleProgress(schedule.name, "running")),
            on_wait=lambda schedule, holder: self.post_message(ScheduleProgress(schedule.name, "waiting", holder)),
            on_run=lambda schedule, outcome: self.post_message(ScheduleRan(schedule.name, outcome)),
            watch=self.bridge.watch)
        self.heartbeat = host  # set first, so that quitting stops it whatever happens next
        try:
            host.acquire()
        except LockHeld as exc:
            self.heartbeat = None
            self.post_message(SchedulerState("elsewhere", exc.holder))
            return
        except Exception as exc:
            self.heartbeat = None
            self.post_message(SchedulerState("off", detail=f"{type(exc).__name__}: {exc}"))
            raise
        self.post_message(SchedulerState("on"))
        host.run()  # until quit; releases the lock when it ends

    @work(thread=True, exit_on_error=False, group="heartbeat-now")
    def run_schedule_now(self, name: str) -> None:
        self.heartbeat.run_now(name)

    @work(thread=True, exit_on_error=False, group="schedules-edit")
    def set_schedule_paused(self, name: str, paused: bool) -> None:
        self.services.set_schedule_paused(self.project, name, paused)
        self.later(self.notify, f"{'Paused' if paused else 'Resumed'} {name}.", title="Heartbeat", timeout=4)
        self.load_schedules()

    async def stop_heartbeat(self) -> None:
        """On quit: stop the scheduler; a run in progress is waited for (bounded); the lock is released."""
        host = self.heartbeat
        if host is None:
            return
        host.stop.set()
        if host.running:
            self.notify(f"Waiting for the scheduled run {host.running} to finish…", timeout=5)
        try:
            await asyncio.wait_for(asyncio.to_thread(host.shutdown, QUIT_WAIT), timeout=QUIT_WAIT + 5)
        except TimeoutError:
            host.release()

    # --- messages ----------------------------------------------------------------------------------
    def on_schedules_loaded(self, message: SchedulesLoaded) -> None:
        self.schedule_rows = list(message.rows)
        screen = self.app.screen
        if isinstance(screen, SchedulesScreen):
            self._acknowledge()
            screen.update(self.schedule_rows, self.scheduler_line())
        self._show_heartbeat()

    def on_scheduler_state(self, message: SchedulerState) -> None:
        self.scheduler_state, self.scheduler_holder = message.state, message.holder
        self.scheduler_detail = message.detail
        self._show_heartbeat()

    def on_schedule_progress(self, message: ScheduleProgress) -> None:
        if message.state == "running":
            self.scheduled_activity = f"running {message.name}"
            self.notify(f"Scheduled run {message.name} started: its steps and output show live (its own "
                        "session, in the Audit pane too).", title="Heartbeat", timeout=4)
            steps = self.query_one(StepsPanel)
            steps.clear_steps()
            steps.replaying = True  # the user's next work replaces it, as it replaces a replay
            steps.heading = f"Steps · scheduled run {message.name} · live"
        else:
            self.scheduled_activity = f"{message.name} waits for {message.holder}"
        self._show_heartbeat()

    def on_schedule_ran(self, message: ScheduleRan) -> None:
        outcome = message.outcome
        self.scheduled_activity = ""
        ok = outcome.outcome in ("succeeded", "skipped")
        detail = f": {outcome.detail}" if outcome.detail else ""
        steps = self.query_one(StepsPanel)
        if steps.heading == f"Steps · scheduled run {message.name} · live":
            steps.heading = f"Steps · scheduled run {message.name} · {outcome.outcome}"
        self.notify(f"Scheduled run {message.name} {outcome.outcome}{detail}", title="Heartbeat",
                    severity="information" if ok else "error", timeout=8 if ok else 15)
        self.load_schedules()
        self._schedule_audit()

    def on_followed_events(self, message: FollowedEvents) -> None:
        """Another process's scheduled run or MCP call, as the log records it: into the panes like one run
        here (the name in the heading is the schedule's or the MCP client's, made inert)."""
        steps = self.query_one(StepsPanel)
        for event in message.events:
            name = one_line(event.actor.split(":", 1)[1] if ":" in event.actor else event.actor)[:80]
            if event.session_id != self.following:
                self.following = event.session_id
                steps.clear_steps()
                steps.replaying = True
                steps.heading = (f"Steps · MCP call from {name} · live" if event.actor.startswith("mcp:")
                                 else f"Steps · scheduled run {name} (run elsewhere) · live")
            if event.kind == events.EXEC_OUTPUT:
                self.bridge.push(output_piece(event))
            else:
                self.on_bus_event(BusEvent(event))
            if event.kind == events.SESSION_FINISHED and steps.heading.endswith("· live"):
                steps.heading = steps.heading.removesuffix("· live") + "· finished"

    # --- what the status bar and the view say --------------------------------------------------------
    def scheduler_line(self) -> str:
        if self.scheduler_state == "elsewhere":
            pid = f" (pid {self.scheduler_holder})" if self.scheduler_holder else ""
            return f"scheduler: running elsewhere{pid}"
        if self.scheduler_state == "off":
            return f"scheduler: off ({self.scheduler_detail})"
        if self.scheduled_activity:
            return f"scheduler: {self.scheduled_activity}"
        if self.scheduler_state == "on" and self.schedule_rows:
            upcoming = [r for r in self.schedule_rows if r.next_run is not None]
            if not upcoming:
                return "scheduler: all paused"
            first = min(upcoming, key=lambda r: r.next_run)
            local = first.next_run.astimezone()
            day = "" if local.date() == datetime.now().astimezone().date() else f"{local:%a} "
            return f"scheduler: next {first.name} {day}{local:%H:%M}"
        if self.scheduler_state == "on":
            return ""  # nothing scheduled: nothing to say
        return "scheduler: starting…" if self.schedule_rows else ""

    def _show_heartbeat(self) -> None:
        bar = self.query_one(StatusBar)
        bar.heartbeat = self.scheduler_line()
        bar.alert = failure_summary(self.schedule_rows or [], self.seen_failures)

    def _acknowledge(self) -> None:
        """The analyst has seen the schedules: failed runs shown now stop warning in the status bar."""
        for row in self.schedule_rows or []:
            if row.failed:
                self.seen_failures[row.name] = row.last_run_id

    # --- actions -----------------------------------------------------------------------------------
    def action_show_schedules(self, default: str = "") -> None:
        self._acknowledge()
        self._show_heartbeat()
        self.app.push_screen(SchedulesScreen(self.schedule_rows, self.scheduler_line(), default),
                             self._schedule_chosen)
        self.load_schedules()

    def action_pause_schedule(self) -> None:
        self.action_show_schedules("toggle")

    def action_run_schedule(self) -> None:
        self.action_show_schedules("run")

    def _schedule_chosen(self, choice: ScheduleChoice | None) -> None:
        if choice is None:
            return
        name = choice.row.name
        if choice.what == "toggle":
            self.set_schedule_paused(name, not choice.row.paused)
            return
        host = self.heartbeat
        if self.scheduler_state != "on" or host is None:
            where = self.scheduler_line() or "scheduler: not started yet"
            self.notify(f"This TUI does not run the schedules ({where}); run it there, e.g. "
                        "workbench heartbeat run --once when it is due.", severity="warning", timeout=8)
            return
        self.notify(f"Running {name} now (after any work in progress)…", title="Heartbeat", timeout=4)
        self.run_schedule_now(name)
