"""Project trust in the workstation: the status bar says "restricted", and a dialog, once each time an
untrusted project opens, lists exactly what of its config is ignored, what changed since it was trusted and
which schedules will not run; `t` trusts it (the same as `workbench trust -p DIR`).

Everything listed comes from the project folder (setting names and values, schedule names): plain Text.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from workbench.inert import plain
from workbench.tui.messages import TrustChecked


class TrustScreen(ModalScreen[bool]):
    """Dismisses with True when the analyst trusts the project, False to stay restricted."""

    BINDINGS = [Binding("t", "decide(True)", "Trust", priority=True),
                Binding("escape,r", "decide(False)", "Stay restricted")]

    def __init__(self, view: Any) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(id="trust-dialog", classes="dialog"):
            yield Label(plain(f"This project is restricted: {view.reason}", single_line=True), id="trust-title")
            lines = [f"Its folder: {view.root}", "",
                     "Until you trust it, its own settings may only tighten, and its schedules do not run."]
            if view.changes:
                lines += ["", "Changed since you trusted it:", *(f"  • {c}" for c in view.changes)]
            if view.ignored:
                lines += ["", "Ignored settings:", *(f"  • {i}" for i in view.ignored)]
            if view.schedules:
                lines += ["", "Schedules that will not run:", *(f"  • {s}" for s in view.schedules)]
            if view.problem:
                lines += ["", view.problem]
            with VerticalScroll(id="trust-details"):
                yield Static(plain("\n".join(lines)), id="trust-text")
            with Horizontal(classes="buttons"):
                yield Button("Trust this project (t)", id="trust", variant="warning")
                yield Button("Stay restricted (esc)", id="restricted", variant="primary")

    def action_decide(self, trusted: bool) -> None:
        self.dismiss(trusted)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "trust")


class TrustActions:
    """Mixed into MainScreen (which provides services, project, `later` and `notify`)."""

    @work(thread=True, exclusive=True, exit_on_error=False, group="trust")
    def check_trust(self, ask: bool = True) -> None:
        self.post_message(TrustChecked(self.services.trust_view(self.project), ask))

    def on_trust_checked(self, message: TrustChecked) -> None:
        from workbench.tui.widgets.status_bar import StatusBar

        view = message.view
        self.query_one(StatusBar).trust = "" if view.trusted else "restricted"
        if not view.trusted and message.ask:
            self.app.push_screen(TrustScreen(view), self._trust_chosen)

    def _trust_chosen(self, trusted: bool | None) -> None:
        if trusted:
            self.trust_project()

    def action_trust_project(self) -> None:
        self.check_trust(ask=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="trust")
    def trust_project(self) -> None:
        try:
            self.services.trust(self.project)
        except Exception as exc:  # a config that is a symlink, an unwritable record: say it, stay restricted
            self.later(self.notify, f"Could not trust the project: {exc}", severity="error", timeout=10)
            return
        self.later(self.app.reload_settings)
        self.later(self.notify, "The project is trusted: its settings apply and its schedules may run.",
                   title="Trust", timeout=6)
        self.post_message(TrustChecked(self.services.trust_view(self.project), False))
