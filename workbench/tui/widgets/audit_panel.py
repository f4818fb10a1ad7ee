"""The audit view: verification status with the key fingerprint, the sessions, the latest entries.

Entry summaries quote the sandbox (file names, package names, errors) and actors name schedules: cells,
options and the status are `Text` made visible by `workbench.inert` (DataTable and OptionList parse markup
in plain strings).
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from workbench.inert import one_line, plain
from workbench.tui.services import AuditSummary


class AuditPanel(Vertical):
    """The Audit pane. Picking a session in the list replays its steps (the screen handles it)."""

    def compose(self):
        yield Static("Reading the audit log…", id="audit-status")
        yield OptionList(id="audit-sessions")
        table = DataTable(id="audit-entries", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        self.query_one("#audit-sessions", OptionList).border_title = "Sessions"
        table = self.query_one("#audit-entries", DataTable)
        table.add_columns("#", "time", "kind", "session", "what")

    def show(self, summary: AuditSummary, current_session: str | None = None) -> None:
        status = Text(no_wrap=False)
        if summary.ok is True:
            status.append("✔ verified", "bold green")
        elif summary.ok is False:
            status.append("✘ NOT intact", "bold red")
            if summary.error:
                status.append(f": {one_line(summary.error)}", "red")
        else:
            status.append("not verified yet", "dim")
            status.append(" (ctrl+p → Verify audit)", "dim")
        status.append(f" · {summary.entries} entries")
        if summary.fingerprint:
            status.append(f" · key {one_line(summary.fingerprint[:16])}", "dim")
        if summary.key_warning:
            status.append("\n⚠ signing key not in an OS keyring (see: workbench doctor)", "yellow")
        self.query_one("#audit-status", Static).update(status)

        sessions = self.query_one("#audit-sessions", OptionList)
        highlighted = sessions.highlighted
        sessions.clear_options()
        for row in reversed(summary.sessions):
            mark = "● " if row.id == current_session else "  "
            label = f"{mark}{row.id}  {row.first_time:%Y-%m-%d %H:%M}  {row.entries:>5} entries"
            scheduled = [a for a in row.actors if a.startswith("heartbeat:")]
            if scheduled:  # a scheduled run's own session (picking it replays its steps), on one line
                actor = scheduled[0] if len(scheduled[0]) <= 22 else scheduled[0][:21] + "…"
                label = f"{mark}{row.id}  {row.first_time:%Y-%m-%d %H:%M}  {row.entries:>5} · {actor}"
            sessions.add_option(Option(plain(label, single_line=True), id=row.id))
        if highlighted is not None and highlighted < sessions.option_count:
            sessions.highlighted = highlighted

        table = self.query_one("#audit-entries", DataTable)
        table.clear()
        for entry in summary.recent:
            table.add_row(str(entry.seq), f"{entry.time:%H:%M:%S}", plain(entry.kind, single_line=True),
                          plain(entry.session_id[:8], single_line=True), plain(entry.summary, single_line=True))
        if summary.recent:
            table.move_cursor(row=len(summary.recent) - 1, animate=False)
