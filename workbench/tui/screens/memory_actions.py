"""The main screen's memory actions: add a note, search notes, open one in $EDITOR, delete one.

A mixin like `ToolActions`: each action asks in a dialog, then reads or writes the notes on a thread
worker (the index is SQLite and embedding a note runs the model), never on the event loop. With a
session open, every write and search is an event in the audit log, like the agent's own memory use.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

from textual import work

from workbench.tui.screens.notes import ConfirmPrompt, NoteChoice, NoteDraft, NoteEditor, NotesScreen
from workbench.tui.screens.prompts import InputPrompt


def _title(note: Any, width: int = 60) -> str:
    title = " ".join(str(note.title).split())
    return title if len(title) <= width else title[: width - 1] + "…"


class MemoryActions:
    """Mixed into MainScreen (which provides session, services, project, `later` and `notify`)."""

    def _session_ready(self) -> bool:
        """Writes wait for the session, so that they are in the audit log like the agent's."""
        if self.session is None:
            self.notify("The session is still opening; try again in a moment.", severity="warning")
            return False
        return True

    # --- add -----------------------------------------------------------------------------------------
    def action_add_note(self) -> None:
        def save(draft: NoteDraft | None) -> None:
            if draft is not None and self._session_ready():
                self.save_note(draft)

        self.app.push_screen(NoteEditor(), save)

    @work(thread=True, exit_on_error=False, group="memory")
    def save_note(self, draft: NoteDraft) -> None:
        note = self.services.add_note(self.project, self.session, draft.text, draft.title or None, draft.tags)
        self.later(self.notify, f"Note saved: {_title(note)}", title="Memory", timeout=5)

    # --- search and browse ---------------------------------------------------------------------------
    def action_search_notes(self) -> None:
        def search(query: str | None) -> None:
            if query:
                self.search_notes(query)

        self.app.push_screen(InputPrompt("Search notes (enter searches, esc cancels)",
                                         "what to look for, in words"), search)

    @work(thread=True, exclusive=True, exit_on_error=False, group="memory-read")
    def search_notes(self, query: str) -> None:
        hits = self.services.search_notes(self.project, self.session, query)
        heading = f"Notes for {query!r}, best first (enter or e: $EDITOR, d: delete, esc: close)"
        self.later(self.app.push_screen, NotesScreen(heading, list(hits)), self._note_chosen)

    def action_edit_note(self) -> None:
        self.browse_notes("edit")

    def action_delete_note(self) -> None:
        self.browse_notes("delete")

    @work(thread=True, exclusive=True, exit_on_error=False, group="memory-read")
    def browse_notes(self, default: str) -> None:
        notes = self.services.list_notes(self.project, self.session)
        verb = "open it in $EDITOR" if default == "edit" else "delete it"
        heading = f"Notes, newest first (enter: {verb}; e: $EDITOR, d: delete, esc: close)"
        self.later(self.app.push_screen, NotesScreen(heading, [(n, None) for n in notes], default),
                   self._note_chosen)

    def _note_chosen(self, choice: NoteChoice | None) -> None:
        if choice is None:
            return
        if choice.what == "edit":
            self.open_note(choice.note)
            return

        def confirmed(yes: bool | None) -> None:
            if yes and self._session_ready():
                self.delete_note(choice.note.id)

        self.app.push_screen(ConfirmPrompt(f"Delete the note {_title(choice.note)!r}? (y/n)"), confirmed)

    # --- delete and edit -----------------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="memory")
    def delete_note(self, note_id: str) -> None:
        note = self.services.remove_note(self.project, self.session, note_id)
        self.later(self.notify, f"Note deleted: {_title(note)}", title="Memory", timeout=5)

    def open_note(self, note: Any) -> None:
        path = getattr(note, "path", None)
        if path is None:
            self.notify("This note has no file to open.", severity="warning")
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            self.notify("Set $EDITOR (for example: export EDITOR=nano) to edit notes.", severity="warning")
            return
        with self.app.suspend():
            subprocess.run([*shlex.split(editor), str(path)], check=False)
        self.reindex_notes()

    @work(thread=True, exit_on_error=False, group="memory")
    def reindex_notes(self) -> None:
        self.services.reindex_notes(self.project, self.session)
        self.later(self.notify, "Note saved; memory is up to date.", title="Memory", timeout=4)
