"""What is wrong and the command that fixes it: a missing engine, base image or model, a failed setup."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from workbench.inert import one_line, plain, visible


@dataclass(frozen=True)
class Problem:
    what: str
    detail: str
    fix: str = ""


def problems_from_report(report) -> list[Problem]:
    """The failures that stop code from running (engine, image, model), from doctor's report."""
    blocking = ("engine", "base image", "model")
    return [Problem(f.name, f.detail, f.fix) for f in report.findings if f.status == "fail" and f.name in blocking]


class ErrorScreen(ModalScreen[str]):
    """Dismisses with "retry", "continue" or "quit"."""

    BINDINGS = [
        Binding("r", "choose('retry')", "Check again"),
        Binding("escape,c", "choose('continue')", "Continue"),
        Binding("ctrl+q", "choose('quit')", "Quit", priority=True),
    ]

    def __init__(self, problems: list[Problem], title: str = "Workbench cannot run code yet") -> None:
        super().__init__()
        self.problems = problems
        self.heading = title

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog", classes="dialog"):
            yield Label(plain(self.heading, single_line=True), id="error-title")
            with VerticalScroll(id="error-problems"):
                for problem in self.problems:  # details quote errors, paths and settings: shown inert
                    text = Text()
                    text.append(f"✘ {one_line(problem.what)}: ", "bold red")
                    text.append(visible(problem.detail))
                    if problem.fix:
                        text.append("\n  fix: ", "bold")
                        text.append(visible(problem.fix), "bold yellow")
                    yield Static(text, classes="problem")
            yield Static("The files, the audit log and earlier sessions stay available. Fix the above "
                         "in a shell, then press r to check again.", id="error-help")
            with Horizontal(classes="buttons"):
                yield Button("Check again (r)", id="retry", variant="primary")
                yield Button("Continue (esc)", id="continue")
                yield Button("Quit (ctrl+q)", id="quit", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
