"""Memory dialogs: write a note, browse notes (search results or all of them), confirm a deletion.

Notes are written by the agent too (the model's words) and by whoever sent the project: titles, tags and
bodies are shown as `Text` made visible by `workbench.inert` (OptionList parses markup in plain strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from workbench.inert import plain


@dataclass(frozen=True)
class NoteDraft:
    title: str
    text: str
    tags: tuple[str, ...] = ()


class NoteEditor(ModalScreen[NoteDraft | None]):
    """A new note: a title (optional: the first line is used), tags, and the Markdown text."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="note-dialog", classes="dialog"):
            yield Label("Add a note to the project's memory (ctrl+s saves, esc cancels)", classes="dialog-title")
            yield Input(placeholder="title (optional: the first line of the text)", id="note-title")
            yield Input(placeholder="tags, separated by spaces (optional)", id="note-tags")
            yield TextArea("", id="note-text", language="markdown", tab_behavior="indent")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#note-text", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def action_save(self) -> None:
        text = self.query_one("#note-text", TextArea).text
        if not text.strip():
            self.notify("Write the note's text first.", severity="warning")
            return
        tags = tuple(self.query_one("#note-tags", Input).value.replace(",", " ").split())
        self.dismiss(NoteDraft(self.query_one("#note-title", Input).value.strip(), text, tags))

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class NoteChoice:
    what: str  # "edit" | "delete"
    note: Any


def _label(note: Any, score: float | None) -> str:
    date = str(getattr(note, "created", ""))[:10]
    tags = f"  [{', '.join(note.tags)}]" if getattr(note, "tags", ()) else ""
    rank = f"{score:.3f}  ·  " if score is not None else ""
    return f"{rank}{note.title}  ·  {date}{tags}"


class NotesScreen(ModalScreen[NoteChoice | None]):
    """Notes with a preview of the highlighted one: enter or e opens it in $EDITOR, d deletes it."""

    BINDINGS = [
        Binding("e", "choose('edit')", "Edit in $EDITOR"),
        Binding("d", "choose('delete')", "Delete"),
        Binding("escape", "cancel", "Close"),
    ]

    def __init__(self, heading: str, hits: list[tuple[Any, float | None]], default: str = "edit") -> None:
        super().__init__()
        self.heading, self.hits, self.default = heading, hits, default
        self.preview = ""  # the highlighted note as shown below the list

    def compose(self) -> ComposeResult:
        with Vertical(id="notes-dialog", classes="dialog"):
            yield Label(plain(self.heading, single_line=True), classes="dialog-title")
            if self.hits:
                yield OptionList(*[Option(plain(_label(note, score), single_line=True), id=str(i))
                                   for i, (note, score) in enumerate(self.hits)], id="notes-list")
                with VerticalScroll(id="notes-preview"):
                    yield Static("", id="notes-preview-text", markup=False)
            else:
                yield Label("No notes found.", id="notes-empty")

    def on_mount(self) -> None:
        if self.hits:
            self.query_one(OptionList).focus()
            self._preview(0)

    @property
    def highlighted(self) -> Any:
        if not self.hits:
            return None
        index = self.query_one(OptionList).highlighted
        return self.hits[index][0] if index is not None else None

    def _preview(self, index: int | None) -> None:
        if index is None or not self.hits:
            return
        note = self.hits[index][0]
        self.preview = f"{note.title}\n\n{note.body}"
        self.query_one("#notes-preview-text", Static).update(plain(self.preview))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._preview(event.option_index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(NoteChoice(self.default, self.hits[event.option_index][0]))

    def action_choose(self, what: str) -> None:
        note = self.highlighted
        if note is not None:
            self.dismiss(NoteChoice(what, note))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmPrompt(ModalScreen[bool]):
    """Yes or no: y confirms, n or escape declines."""

    BINDINGS = [Binding("y", "answer(True)", "Yes", priority=True), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label(plain(self.question, single_line=True), classes="dialog-title")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
