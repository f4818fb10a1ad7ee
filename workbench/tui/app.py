"""The Textual workstation. Until the full workstation lands, a screen showing doctor's findings."""

from __future__ import annotations

from textual import work
from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static

from workbench.doctor import DoctorReport, run_doctor
from workbench.project import Project


class WorkbenchApp(App):
    TITLE = "Workbench"
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def __init__(self, project: Project):
        super().__init__()
        self.project = project
        self.sub_title = str(project.root)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Checking engine, image, model and keyring…", id="doctor")
        yield Footer()

    def on_mount(self) -> None:
        self.run_doctor()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def run_doctor(self) -> None:
        report = run_doctor(self.project.settings(), self.project.root)
        self.call_from_thread(self._show, report)

    def _show(self, report: DoctorReport) -> None:
        lines = [finding.line() for finding in report.findings]
        self.query_one("#doctor", Static).update("\n".join(lines))


def make_app(project: Project) -> WorkbenchApp:
    """The one factory the CLI and the tests use to build the app."""
    return WorkbenchApp(project)
