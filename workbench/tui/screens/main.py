"""The workstation: Steps, Output, Files and Audit panes, the task input, the status bar, the footer.

Everything that blocks (opening a session, doctor, sqlite, the engine, the model) runs in a labelled
thread worker; results come back as messages. Events from the session's bus arrive through the
`EventBridge` (output coalesced, everything else one message per event).

Long because this is where the panes, the workers and their messages meet; the actions live in mixins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import threading
import time
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList
from textual.worker import Worker, WorkerState

from workbench import events
from workbench.errors import WorkbenchError
from workbench.tui.bridge import EventBridge, OutputBatch
from workbench.tui.messages import (
    AuditLoaded,
    BusEvent,
    EnvironmentChecked,
    FollowedEvents,
    Invoke,
    OutputPending,
    SessionReady,
    SessionReplay,
)
from workbench.tui.screens.approval import ApprovalScreen
from workbench.tui.screens.approval_requests import ApprovalRequests
from workbench.tui.screens.error import ErrorScreen, Problem, problems_from_report
from workbench.tui.screens.heartbeat_actions import HeartbeatActions
from workbench.tui.screens.memory_actions import MemoryActions
from workbench.tui.screens.tools import ToolActions
from workbench.tui.screens.trust import TrustActions
from workbench.tui.widgets.audit_panel import AuditPanel
from workbench.tui.widgets.files_panel import FilesPanel
from workbench.tui.widgets.output_panel import OutputPanel
from workbench.tui.widgets.status_bar import StatusBar
from workbench.tui.widgets.steps_panel import StepsPanel
from workbench.tui.widgets.task_input import TaskInput

FRAME = 1 / 30  # at most this often the output panel takes a batch
AUDIT_POLL = 2.0  # seconds between checks that the log has grown from elsewhere


class MainScreen(ToolActions, MemoryActions, HeartbeatActions, TrustActions, ApprovalRequests, Screen):
    BINDINGS = [
        Binding("f2", "focus_pane('steps')", "Steps"),
        Binding("f3", "focus_pane('output')", "Output"),
        Binding("f4", "focus_pane('files')", "Files"),
        Binding("f5", "focus_pane('audit')", "Audit"),
        Binding("escape", "focus_pane('input')", "Task", show=False),
        Binding("ctrl+s", "stop", "Stop"),
        Binding("ctrl+r", "run_code", "Run code"),
        Binding("ctrl+n", "new_session", "New session"),
        Binding("f6", "zoom", "Zoom pane"),
        Binding("f7", "show_schedules", "Schedules"),
        Binding("ctrl+o", "open_in_editor", "Open file", show=False),
        Binding("ctrl+right", "resize(1)", "Widen left", show=False),
        Binding("ctrl+left", "resize(-1)", "Narrow left", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.session: Any = None
        self.bridge = EventBridge(self)
        self.report: Any = None
        self.agent_running = False
        self._stop = threading.Event()
        self._agent_idle = threading.Event()
        self._agent_idle.set()
        self._execution: Any = None
        self._last_flush = 0.0
        self._flush_timer: Any = None
        self._audit_timer: Any = None
        self._audit_entries: int | None = None  # the log's size when the Audit pane was last read
        self._followed_seq: int | None = None  # where following another process's scheduled runs goes on
        self._replayed_previous = False
        self._left_width = 3
        self.init_heartbeat()

    @property
    def project(self):
        return self.app.project

    @property
    def services(self):
        return self.app.services

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield StepsPanel(id="steps", classes="pane")
                yield OutputPanel(id="output", classes="pane")
                yield TaskInput(id="task")
            with Vertical(id="right"):
                yield FilesPanel(self.project.workspace, id="files", classes="pane")
                yield AuditPanel(id="audit", classes="pane")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        for selector, title in (("#steps", "Steps"), ("#output", "Output"), ("#files", "Files"),
                                ("#audit", "Audit")):
            self.query_one(selector).border_title = title
        self.query_one(OutputPanel).border_subtitle = "idle · 0 B"
        self.query_one(TaskInput).focus()
        self.check_environment()
        self.check_trust()
        self.open_session()
        self.start_heartbeat()
        self.start_approvals()
        self.set_interval(AUDIT_POLL, self.poll_audit)

    # --- workers -----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="doctor")
    def check_environment(self) -> None:
        self.post_message(EnvironmentChecked(self.services.doctor(self.app.settings, self.project.root)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="session")
    def open_session(self, old: Any = None) -> None:
        if old is not None:
            old.close()
        try:
            session = self.services.open_session(self.project, self.app.settings)
        except WorkbenchError as exc:
            self.post_message(SessionReady(None, exc.message, exc.hint))
            return
        self.post_message(SessionReady(session))

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit")
    def load_audit(self, verify: bool = False) -> None:
        self.post_message(AuditLoaded(self.services.audit_summary(self.project, self.session, verify=verify)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit-poll")
    def poll_audit(self) -> None:
        """Refresh the Audit pane when the log grew from elsewhere (a scheduled run in a service, `workbench
        exec` in another terminal): one indexed query every AUDIT_POLL seconds, on a thread. MCP calls
        (`workbench mcp`, actor `mcp:<client>`) are followed into the panes, and so are scheduled runs while
        another process runs the schedules."""
        if self.session is None or self._audit_entries is None:
            return
        followed = ("mcp:", "heartbeat:") if self.scheduler_state == "elsewhere" else ("mcp:",)
        start = self._followed_seq if self._followed_seq is not None else self._audit_entries
        size, found = self.services.audit_events_from(self.project, start, self.session, followed)
        self._followed_seq = size
        if found:
            self.post_message(FollowedEvents(tuple(found)))
        if size != self._audit_entries:
            self.later(self._schedule_audit)

    @work(thread=True, exclusive=True, exit_on_error=False, group="replay")
    def replay(self, session_id: str) -> None:
        events = self.services.session_events(self.project, session_id, self.session)
        self.post_message(SessionReplay(session_id, events))

    @work(thread=True, exclusive=True, exit_on_error=False, group="agent")
    def run_task(self, task: str) -> Any:
        def status(message: str) -> None:
            self.later(self.notify, message, title="Model", timeout=4)

        def wait(holder: str) -> None:
            self.later(self.query_one(OutputPanel).note,
                       f"your task waits for the {holder} to finish (ctrl+s stops waiting)")

        try:
            with self.gate.hold("your task", self._stop, wait) as got:
                if not got:
                    return None
                return self.services.run_agent(self.session, task, self.approve, self._stop, status)
        finally:
            self._agent_idle.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group="exec")
    def execute(self, language: str, code: str) -> Any:
        if not self.gate.try_acquire("your code"):
            self.later(self.notify, f"The {self.gate.holder or 'scheduled run'} is running; run your code when "
                       "it has finished.", severity="warning")
            return None
        try:
            execution = self.services.execute(self.session, language, code)
            self._execution = execution
            try:
                return execution.result()
            finally:
                self._execution = None
        finally:
            self.gate.release()

    # --- approval (called on the agent's thread) ---------------------------------------------------
    def approve(self, action: Any) -> bool:
        """Block the agent until the analyst decides; a stop request counts as a denial."""
        decision: concurrent.futures.Future[bool] = concurrent.futures.Future()
        self.later(self.app.push_screen, ApprovalScreen(action), lambda ok: decision.set_result(bool(ok)))
        while not self._stop.is_set():
            try:
                return decision.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                continue
        self.later(self._dismiss_approval)
        return False

    def later(self, callback: Any, *args: Any, **kwargs: Any) -> None:
        """From any thread: run `callback(*args, **kwargs)` on the UI thread soon; never blocks."""
        self.post_message(Invoke(functools.partial(callback, *args, **kwargs)))

    def on_invoke(self, message: Invoke) -> None:
        message.callback()

    def on_unmount(self) -> None:
        self._stop.set()  # an agent waiting for approval, or running, ends when the screen goes
        self.stop_approvals()  # another program's request waiting here is refused
        if self.heartbeat is not None:
            self.heartbeat.stop.set()  # the scheduler's loop ends and releases the lock
        self.bridge.detach()

    def _dismiss_approval(self) -> None:
        if isinstance(self.app.screen, ApprovalScreen):
            self.app.screen.dismiss(False)

    # --- messages ----------------------------------------------------------------------------------
    def on_environment_checked(self, message: EnvironmentChecked) -> None:
        self.report = message.report
        self.query_one(StatusBar).apply_report(message.report)
        problems = problems_from_report(message.report)
        if problems:
            self.show_problems(problems)

    def show_problems(self, problems: list[Problem], title: str = "Workbench cannot run code yet") -> None:
        if isinstance(self.app.screen, ErrorScreen):
            self.app.screen.dismiss("replace")

        def chosen(choice: str | None) -> None:
            if choice == "quit":
                self.app.call_next(self.app.action_quit)
            elif choice == "retry":
                self.query_one(StatusBar).engine = "checking…"
                self.check_environment()
                if self.session is None:
                    self.open_session()

        self.app.push_screen(ErrorScreen(problems, title), chosen)

    def on_session_ready(self, message: SessionReady) -> None:
        status = self.query_one(StatusBar)
        if message.session is None:
            status.session = "not open"
            self.show_problems([Problem("session", message.error or "could not open", message.hint or "")],
                               "Workbench could not open a session")
            return
        self.session = message.session
        self.bridge.attach(self.session.bus)
        self.call_after_refresh(gc.freeze)  # the session's objects are long-lived too
        status.session = self.session.session_id
        status.sandbox = "ready" if getattr(self.session, "sandbox_started", False) else "starts on first run"
        self.load_audit()

    def on_output_pending(self, message: OutputPending) -> None:
        wait = FRAME - (time.monotonic() - self._last_flush)
        if wait <= 0:
            self.flush_output()
        elif self._flush_timer is None:
            self._flush_timer = self.set_timer(wait, self.flush_output)

    def flush_output(self) -> None:
        self._flush_timer = None
        self._last_flush = time.monotonic()
        batch = self.bridge.drain()
        if batch.pieces or batch.dropped_chars:
            self.query_one(OutputPanel).write_batch(batch)

    def on_bus_event(self, message: BusEvent) -> None:
        event = message.event
        output = self.query_one(OutputPanel)
        status = self.query_one(StatusBar)
        if event.kind == events.EXEC_STARTED:
            started = events.ExecStarted.decode(event.payload)
            execution_id = started.execution_id
            batch = self.bridge.drain()  # output that raced ahead of this message: split old from new
            output.write_batch(OutputBatch(tuple(x for x in batch.pieces if x.execution_id != execution_id),
                                           batch.dropped_chars))
            output.start_execution(execution_id, started.language, event.actor)
            output.write_batch(OutputBatch(tuple(x for x in batch.pieces if x.execution_id == execution_id), 0))
            status.sandbox = "running"
        elif event.kind == events.EXEC_FINISHED:
            self.flush_output()
            output.finish_execution(dict(event.payload))
            status.sandbox = "agent working" if self.agent_running else "ready"
            self._schedule_audit()
        elif event.kind == events.LLM_REQUEST:
            step = events.LlmRequest.decode(event.payload).step
            status.sandbox = f"model thinking · step {'?' if step is None else step}"
        elif event.kind == events.LLM_ACTION:
            status.sandbox = "agent working"
        elif event.kind in (events.TASK_FINISHED, events.PACKAGE_INSTALLED, events.SESSION_STARTED,
                            events.TASK_STARTED):
            self._schedule_audit()
        steps = self.query_one(StepsPanel)
        current = self.session.session_id if self.session else None
        scheduled = event.session_id != current  # the only other bus relayed is a scheduled run's
        if steps.replaying and not scheduled and event.kind not in (events.SESSION_STARTED, events.SESSION_FINISHED):
            steps.clear_steps()  # live work replaces an earlier session's replay (or a scheduled run's)
            steps.heading = "Steps"
        steps.add_event(event)

    def _schedule_audit(self) -> None:
        if self._audit_timer is None:
            self._audit_timer = self.set_timer(0.5, self._refresh_audit)

    def _refresh_audit(self) -> None:
        self._audit_timer = None
        self.load_audit()

    def on_audit_loaded(self, message: AuditLoaded) -> None:
        summary = message.summary
        self._audit_entries = summary.entries
        current = self.session.session_id if self.session else None
        self.query_one(AuditPanel).show(summary, current)
        tasks = [row.summary for row in summary.recent if row.kind == "task.started"]
        self.query_one(TaskInput).seed(tasks)
        if not self._replayed_previous:
            self._replayed_previous = True
            earlier = [s for s in summary.sessions if s.id != current and s.entries > 2]
            if earlier and self.query_one(StepsPanel).count == 0:
                self.replay(earlier[-1].id)

    def on_session_replay(self, message: SessionReplay) -> None:
        steps = self.query_one(StepsPanel)
        steps.clear_steps()
        current = self.session.session_id if self.session else None
        for event in message.events:
            steps.add_event(event)
        steps.replaying = message.session_id != current
        steps.heading = "Steps" if not steps.replaying else f"Steps · earlier session {message.session_id}"


    @on(OptionList.OptionSelected, "#audit-sessions")
    def _session_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.replay(event.option.id)

    @on(TaskInput.Submitted, "#task")
    def _task_submitted(self, event: TaskInput.Submitted) -> None:
        task = event.value.strip()
        if not task:
            return
        box = self.query_one(TaskInput)
        if self.session is None:
            self.notify("The session is still opening; try again in a moment.", severity="warning")
            return
        if self.agent_running:
            self.notify("The agent is busy with a task. Stop it first (ctrl+s).", severity="warning")
            return
        box.remember(task)
        box.value = ""
        steps = self.query_one(StepsPanel)
        if steps.replaying:
            steps.clear_steps()
            steps.heading = "Steps"
        self._stop = threading.Event()
        self._agent_idle.clear()
        self.agent_running = True
        self.query_one(StatusBar).sandbox = "agent working"
        self.run_task(task)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a finished or failed worker becomes something the analyst sees."""
        worker = event.worker
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if worker.group == "agent":
            self.agent_running = False
            self.query_one(StatusBar).sandbox = "ready"
        if event.state != WorkerState.ERROR:
            return
        error = worker.error
        if isinstance(error, WorkbenchError):
            if type(error).__name__ in ("EngineUnavailable", "LLMError", "NotAvailableYet", "ProjectError"):
                self.show_problems([Problem(worker.group or "work", error.message, error.hint or "")],
                                   "Something Workbench needs is missing")
            else:
                self.notify(error.one_line(), title=worker.group or "error", severity="error", timeout=10)
        else:
            self.notify(f"{type(error).__name__}: {error}", title=f"{worker.group or worker.name} failed",
                        severity="error", timeout=10)

    # --- actions -----------------------------------------------------------------------------------
    def action_check_environment(self) -> None:
        self.query_one(StatusBar).engine = "checking…"
        self.check_environment()

    def action_stop(self) -> None:
        if not self.agent_running and self._execution is None:
            self.notify("Nothing is running.", timeout=3)
            return
        self._stop.set()
        execution = self._execution
        if execution is not None:
            self.cancel_execution(execution)
        self.query_one(OutputPanel).note("stop requested by you")
        self.notify("Stopping…", timeout=3)

    @work(thread=True, exit_on_error=False, group="stop")
    def cancel_execution(self, execution: Any) -> None:
        execution.cancel()

    def action_new_session(self) -> None:
        if self.agent_running or self._execution is not None:
            self.action_stop()
        old, self.session = self.session, None
        self.bridge.detach()
        self.query_one(StepsPanel).clear_steps()
        self.query_one(OutputPanel).clear()
        self.query_one(StatusBar).session = "opening…"
        self.open_session(old)
        self.notify("New session: the workspace and installed packages carry over.", timeout=4)

    async def close_session(self) -> None:
        """On quit: stop the agent, close the session (stops its container) off the event loop, bounded."""
        session, self.session = self.session, None
        self._stop.set()
        self.bridge.detach()

        def close() -> None:
            # The model must not be freed while the agent's thread is inside it (llama.cpp would crash).
            idle = self._agent_idle.wait(timeout=20)
            try:
                if session is not None:
                    session.close()
            finally:
                if idle:
                    self.services.close()

        if self.agent_running or session is not None:
            self.notify("Stopping the agent and closing the session…", timeout=5)
        try:
            await asyncio.wait_for(asyncio.to_thread(close), timeout=25)
        except TimeoutError:
            pass
