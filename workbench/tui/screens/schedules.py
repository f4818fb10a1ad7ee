"""The Schedules view: every heartbeat schedule with cron and zone, next run, last run and its outcome.

A dialog from the command palette ("Show schedules", F7). p pauses or resumes the highlighted schedule,
r runs it now, enter does what the palette entry asked for. The main screen refreshes it after each run
and periodically while it is open. Names, tasks and run details come from the project (a project someone
sent is theirs) and from runs in the sandbox: cells and lines are `Text` made visible by `workbench.inert`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from workbench.inert import one_line, plain
from workbench.tui.heartbeat_host import ScheduleRow

OUTCOME_STYLE = {"succeeded": "green", "failed": "bold red", "timed-out": "bold red", "error": "bold red",
                 "running": "bold", "skipped": "dim"}


@dataclass(frozen=True)
class ScheduleChoice:
    what: str  # "toggle" (pause or resume) | "run"
    row: ScheduleRow


def when(moment: datetime | None) -> str:
    """A time in the machine's zone, short."""
    return moment.astimezone().strftime("%a %Y-%m-%d %H:%M") if moment else "-"


class SchedulesScreen(ModalScreen[ScheduleChoice | None]):
    BINDINGS = [
        Binding("p", "choose('toggle')", "Pause/resume"),
        Binding("r", "choose('run')", "Run now"),
        Binding("escape", "cancel", "Close"),
    ]

    def __init__(self, rows: list[ScheduleRow] | None, scheduler: str = "", default: str = "") -> None:
        super().__init__()
        self.rows = list(rows or [])
        self.loaded = rows is not None
        self.scheduler = scheduler
        self.default = default
        self._columns = False

    def compose(self) -> ComposeResult:
        with Vertical(id="schedules-dialog", classes="dialog"):
            yield Label("Schedules (p: pause/resume, r: run now, esc: close)", classes="dialog-title")
            yield Static("", id="schedules-state")
            yield DataTable(id="schedules-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="schedules-detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "cron (zone)", "next run", "last run", "outcome")
        self._columns = True
        self.update(self.rows if self.loaded else None, self.scheduler)
        failed = [i for i, row in enumerate(self.rows) if row.failed]
        if failed:  # the first failure is what the analyst came to see
            table.move_cursor(row=failed[0], animate=False)
        table.focus()

    def update(self, rows: list[ScheduleRow] | None, scheduler: str | None = None) -> None:
        """Show `rows` (None: still reading), keeping the highlighted schedule."""
        if scheduler is not None:
            self.scheduler = scheduler
        if not self._columns:  # not mounted yet: on_mount shows what is stored here
            if rows is not None:
                self.rows, self.loaded = list(rows), True
            return
        table = self.query_one(DataTable)
        current = self.highlighted
        if rows is not None:
            self.rows, self.loaded = list(rows), True
        table.clear()
        for row in self.rows:
            outcome = Text(one_line(row.last_outcome or "never run"), OUTCOME_STYLE.get(row.last_outcome or "", "dim"))
            table.add_row(plain(row.name, single_line=True), plain(f"{row.cron} ({row.timezone})", single_line=True),
                          "paused" if row.paused else when(row.next_run), when(row.last_started), outcome,
                          key=row.name)
        if current is not None and current.name in {r.name for r in self.rows}:
            table.move_cursor(row=[r.name for r in self.rows].index(current.name), animate=False)
        state = self.scheduler or ""
        if not self.loaded:
            state = "Reading the schedules…"
        elif not self.rows:
            state = "No schedules. Add one with: workbench heartbeat add --cron \"0 7 * * 1-5\" --task \"…\""
        self.query_one("#schedules-state", Static).update(plain(state))
        self._detail()

    @property
    def highlighted(self) -> ScheduleRow | None:
        if not self.rows:
            return None
        index = self.query_one(DataTable).cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def _detail(self) -> None:
        row = self.highlighted
        text = ""
        if row is not None and row.last_detail:
            text = f"{row.name}, last run: {row.last_detail}"
        self.query_one("#schedules-detail", Static).update(plain(text))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.default:
            self.action_choose(self.default)

    def action_choose(self, what: str) -> None:
        row = self.highlighted
        if row is not None:
            self.dismiss(ScheduleChoice(what, row))

    def action_cancel(self) -> None:
        self.dismiss(None)
