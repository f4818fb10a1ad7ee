"""Small dialogs: run code directly, install packages, export the report (the model picker: `models`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea


@functools.cache
def _editor_languages() -> frozenset[str]:
    return frozenset(TextArea().available_languages)


def editor_language(highlight: str) -> str | None:
    """The TextArea's highlighting for a language's highlighter name, None where it has none (R)."""
    return highlight if highlight in _editor_languages() else None


@dataclass(frozen=True)
class CodeRequest:
    language: str
    code: str


class ExecPrompt(ModalScreen[CodeRequest | None]):
    """Type code in any language and run it in the sandbox (recorded like the agent's)."""

    BINDINGS = [Binding("ctrl+r", "run", "Run", priority=True), Binding("escape", "cancel", "Cancel")]

    def __init__(self, language: str = "python", code: str = "", languages: Sequence[tuple[str, str]] = ()) -> None:
        """`languages`: (name, highlighter) pairs from the languages registry (`Services.languages`); without
        them only `language` is offered."""
        super().__init__()
        self.highlights = dict(languages) or {language: language}
        self.language = language if language in self.highlights else next(iter(self.highlights))
        self.code = code

    def compose(self) -> ComposeResult:
        with Vertical(id="exec-dialog", classes="dialog"):
            yield Label("Run code in the sandbox (ctrl+r runs, esc cancels)", classes="dialog-title")
            yield Select([(name, name) for name in self.highlights], value=self.language, allow_blank=False,
                         id="exec-language")
            yield TextArea(self.code, language=editor_language(self.highlights[self.language]), id="exec-code",
                           show_line_numbers=True, tab_behavior="indent")
            with Horizontal(classes="buttons"):
                yield Button("Run (ctrl+r)", id="run", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.query_one(TextArea).language = editor_language(self.highlights.get(str(event.value), ""))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_run() if event.button.id == "run" else self.action_cancel()

    def action_run(self) -> None:
        code = self.query_one(TextArea).text
        if not code.strip():
            self.notify("Type some code first.", severity="warning")
            return
        self.dismiss(CodeRequest(str(self.query_one(Select).value), code))

    def action_cancel(self) -> None:
        self.dismiss(None)


class InputPrompt(ModalScreen[str | None]):
    """One line of text (a path, package names), with an optional choice beside it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str = "", value: str = "",
                 choices: tuple[str, ...] = (), choice: str = "") -> None:
        super().__init__()
        self.heading, self.placeholder, self.value = title, placeholder, value
        self.choices, self.choice = choices, choice or (choices[0] if choices else "")

    def compose(self) -> ComposeResult:
        with Vertical(id="input-dialog", classes="dialog"):
            yield Label(self.heading, classes="dialog-title")
            if self.choices:
                yield Select([(c, c) for c in self.choices], value=self.choice, allow_blank=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            self.dismiss(None)
            return
        if self.choices:
            value = f"{self.query_one(Select).value} {value}"
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
