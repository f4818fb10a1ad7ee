"""Ask before running: the action and its code, in full, then approve (y) or deny (n / escape).

Everything in the dialog comes from the model or, for a request from another program (an MCP client, see
`approval_requests`), from that program (action, thought, code, package names, paths, its name): it is shown as
`Text` made visible by `workbench.inert`, so no markup in it is parsed and no escape reaches the terminal.
The code is shown with its control characters escaped, which is how the analyst can tell they are there.
"""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from workbench.inert import plain, visible
from workbench.tui.widgets.steps_panel import LEXERS


def describe(action: Any) -> dict[str, Any]:
    """The action as a plain dict, whatever form the agent hands it in."""
    if isinstance(action, dict):
        return dict(action)
    try:
        from workbench.tui.services import action_payload

        return action_payload(action)
    except Exception:
        data = getattr(action, "__dict__", None)
        return dict(data) if data else {"action": str(action)}


class ApprovalScreen(ModalScreen[bool]):
    """Dismisses with True (approved) or False (denied)."""

    BINDINGS = [
        Binding("y", "decide(True)", "Approve", priority=True),
        Binding("n", "decide(False)", "Deny", priority=True),
        Binding("escape", "decide(False)", "Deny"),
    ]

    def __init__(self, action: Any, who: str = "The agent") -> None:
        super().__init__()
        self.action_data = describe(action)
        self.who = who  # "The agent", or another program asking through workbench.approvals (untrusted name)
        self.code_shown = ""

    def compose(self) -> ComposeResult:
        data = self.action_data
        kind = str(data.get("action", "action"))
        with Vertical(id="approval-dialog", classes="dialog"):
            yield Label(plain(f"{self.who} wants to {kind.replace('_', ' ')}. Approve?", single_line=True),
                        id="approval-title")
            if data.get("thought"):
                yield Static(plain(data["thought"]), id="approval-thought")
            if kind == "install":
                yield Static(plain(f"This install may reach: {self._reach(str(data.get('manager', '')))}"),
                             id="approval-reach")
            elif kind == "run_code":
                yield Static(plain(f"This code may reach {self._code_reach()}"), id="approval-reach")
            with VerticalScroll(id="approval-code"):
                code = data.get("code") or data.get("content")
                if code:
                    language = str(data.get("language", "") or "text")
                    self.code_shown = str(code)
                    yield Static(Syntax(visible(self.code_shown), self.lexer_for(language),
                                        line_numbers=True, word_wrap=True, theme="ansi_dark",
                                        background_color="default"),
                                 id="approval-code-text")
                else:
                    rest = {k: v for k, v in data.items() if k not in ("thought", "action")}
                    yield Static(plain(json.dumps(rest, indent=2, default=str, ensure_ascii=False)),
                                 id="approval-details")
            with Horizontal(classes="buttons"):
                yield Button("Approve (y)", id="approve", variant="success")
                yield Button("Deny (n)", id="deny", variant="error")

    def lexer_for(self, language: str) -> str:
        """The language's highlighter from the registry (a project's [languages] too), else the panel's."""
        settings = getattr(self.app, "settings", None)
        services = getattr(self.app, "services", None)
        try:
            found = dict(services.languages(settings)).get(language) if settings is not None and services else ""
        except Exception:  # highlighting is a nicety: never a reason the dialog does not show
            found = ""
        return found or LEXERS.get(language.lower(), "text")

    def _reach(self, manager: str) -> str:
        settings = getattr(self.app, "settings", None)
        services = getattr(self.app, "services", None)
        if settings is None or services is None:
            return "the configured package sources"
        try:
            return services.install_reach(settings, manager)
        except Exception as exc:  # a malformed allow_hosts: say so, the decision is still the user's
            return getattr(exc, "message", str(exc))

    def _code_reach(self) -> str:
        """What the project's network policy lets code reach, in `workbench doctor -p`'s words."""
        project = getattr(self.app, "project", None)
        services = getattr(self.app, "services", None)
        if project is None or services is None:
            return "nothing: no network"
        try:
            return services.code_reach(project)
        except Exception as exc:  # a broken rule: say it, the decision is still the user's
            return f"nothing: the network policy cannot be used ({getattr(exc, 'message', exc)})"

    def on_mount(self) -> None:
        self.query_one("#approval-code").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "approve")

    def action_decide(self, approved: bool) -> None:
        self.dismiss(approved)
