"""Memory in the TUI, driven with the Pilot through the command palette: add a note, search, delete.

The notes are the real `MemoryStore` in the test project (Markdown files and the SQLite index), full-text
only so that no embedding model is loaded; the session is the TUI's fake one, whose bus the test reads.
"""

from __future__ import annotations

import pytest
from textual.widgets import OptionList, TextArea

from workbench.memory import MemoryStore
from workbench.tui.screens.notes import ConfirmPrompt, NoteEditor, NotesScreen

from .conftest import SIZE, aio, settle


@pytest.fixture(autouse=True)
def _full_text_only(monkeypatch):
    import workbench.memory.store as store_module

    monkeypatch.setattr(store_module, "default_embedder", lambda settings=None: None)


async def palette(pilot, command: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.press(*command)
    await pilot.pause(0.3)
    await pilot.press("enter")


def note_files(project):
    return sorted(project.memory_dir.glob("*.md"))


@aio
async def test_add_search_and_delete_a_note(make, demo, services):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        seen = []
        services.sessions[0].bus.subscribe(seen.append)

        await palette(pilot, "Add note")
        await settle(pilot, lambda: isinstance(app.screen, NoteEditor))
        app.screen.query_one("#note-title").value = "Sales file format"
        app.screen.query_one("#note-tags").value = "csv sales"
        app.screen.query_one("#note-text", TextArea).text = "sales.csv uses semicolons as separators."
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: len(note_files(demo)) == 1 and any(e.kind == "memory.saved" for e in seen))
        with MemoryStore.for_project(demo, embedder=None) as store:
            [note] = store.list()
        assert note.title == "Sales file format" and note.tags == ("csv", "sales")
        assert note.body == "sales.csv uses semicolons as separators."

        await palette(pilot, "Search notes")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "InputPrompt")
        await pilot.press(*"semicolons separator")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, NotesScreen))
        results = app.screen.query_one(OptionList)
        assert results.option_count == 1 and "Sales file format" in str(results.get_option_at_index(0).prompt)
        assert "semicolons" in app.screen.preview
        assert any(e.kind == "memory.retrieved" and e.payload["purpose"] == "search" for e in seen)
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, NotesScreen))

        await palette(pilot, "Delete note")
        await settle(pilot, lambda: isinstance(app.screen, NotesScreen))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmPrompt))
        await pilot.press("y")
        await settle(pilot, lambda: not note_files(demo) and any(e.kind == "memory.deleted" for e in seen))
        assert [e.payload["id"] for e in seen if e.kind == "memory.deleted"] == [note.id]
        with MemoryStore.for_project(demo, embedder=None) as store:
            assert store.list() == [] and store.search("semicolons") == []


@aio
async def test_search_without_matches_says_so(make):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        app.screen.search_notes("nothing like this")
        await settle(pilot, lambda: isinstance(app.screen, NotesScreen))
        assert app.screen.query("#notes-empty")
