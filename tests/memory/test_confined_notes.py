"""A memory folder from a project someone sent you: notes that are symlinks, FIFOs or huge are never a way in."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from workbench.memory.notes import NOTE_MAX_BYTES, Note, NoteFolder, NoteIgnored

SECRET = "memory-host-secret-41ac"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "outside.txt"
    path.write_text(f"---\ntitle: leaked\n---\n\n{SECRET} revenue\n")
    return path


@pytest.mark.timeout(30)
def test_symlinked_and_fifo_notes_are_ignored_with_a_warning(make_store, recorder, secret, tmp_path, caplog):
    memory = tmp_path / "memory"
    memory.mkdir()
    (memory / "leak.md").symlink_to(secret)
    os.mkfifo(memory / "pipe.md")
    (memory / "zero.md").symlink_to("/dev/zero")
    (memory / "real.md").write_text("The revenue CSV uses semicolons.\n")
    with caplog.at_level(logging.WARNING, logger="workbench.memory.notes"):
        store = make_store()
        assert [n.id for n in store.list()] == ["real"]
        hits = store.search("revenue", k=5)
        context = store.retrieve_for_task("revenue", 500)
    assert [n.id for n, _ in hits] == ["real"] and SECRET not in context
    ignored = [e.payload for e in recorder.events if e.kind == "memory.ignored"]
    assert sorted((p["file"], p["kind"]) for p in ignored) == [
        (".workbench/memory/leak.md", "symlink"), (".workbench/memory/pipe.md", "fifo"),
        (".workbench/memory/zero.md", "symlink")]
    assert {p["message"] for p in ignored} >= {f"memory note leak.md is a symlink to {secret}: ignored, not followed",
                                               "memory note pipe.md is a FIFO: ignored, not opened"}
    assert len([r for r in caplog.records if "ignored" in r.getMessage()]) == 3  # once each, not per scan
    with pytest.raises(NoteIgnored, match="not followed"):
        store.folder.read("leak")
    assert SECRET not in repr([e.payload for e in recorder.events])


def test_a_digest_written_over_a_symlink_replaces_it(tmp_path, secret):
    folder = NoteFolder(tmp_path / "memory")
    folder.root.mkdir()
    (folder.root / "sessions-2026-01.md").symlink_to(secret)
    folder.replace(Note(id="sessions-2026-01", title="d", body="b", created="2026"))
    assert secret.read_text().startswith("---\ntitle: leaked")  # the host file is untouched
    written = folder.root / "sessions-2026-01.md"
    assert not written.is_symlink() and "title: d" in written.read_text()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_create_never_takes_a_name_held_by_a_symlink(tmp_path, secret, monkeypatch):
    import workbench.memory.notes as notes

    folder = NoteFolder(tmp_path / "memory")
    folder.root.mkdir()
    (folder.root / "t-abcd.md").symlink_to(secret)
    tokens = iter(["abcd", "beef"])
    real = notes.secrets.token_hex
    monkeypatch.setattr(notes.secrets, "token_hex", lambda n: next(tokens) if n == 2 else real(n))
    note = folder.create("t", "body", (), None)
    assert note.id == "t-beef" and (folder.root / "t-abcd.md").is_symlink()
    assert secret.read_text().startswith("---\ntitle: leaked")


def test_a_huge_sparse_note_is_read_up_to_the_cap(tmp_path):
    folder = NoteFolder(tmp_path / "memory")
    folder.root.mkdir()
    with open(folder.root / "big.md", "wb") as handle:
        handle.write(b"big note\n")
        handle.truncate(4 * 1024**3)
    note, raw = folder.read("big")
    assert len(raw) == NOTE_MAX_BYTES and note.title == "big note"


def test_a_symlinked_memory_folder_holds_no_notes(tmp_path, secret):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "n.md").write_text("outside note")
    (tmp_path / "memory").symlink_to(real)
    folder = NoteFolder(tmp_path / "memory")
    assert list(folder.scan()) == []
    with pytest.raises(FileNotFoundError):
        folder.read("n")


def test_roll_up_never_moves_notes_through_a_symlinked_archive(make_store, tmp_path):
    from workbench.errors import WorkbenchError

    outside = tmp_path / "outside-archive"
    outside.mkdir()
    store = make_store(embedder=None)
    (store.folder.root / "archive").symlink_to(outside)
    for day in ("2026-10-01", "2026-10-02", "2026-10-03"):
        store.folder.create(f"Agent session succeeded: {day}", "Task: t", ("session", "agent", "success"), None,
                            created=f"{day}T10:00:00+00:00")
    with pytest.raises(WorkbenchError, match="archive is a symlink to .*: not followed"):
        store.roll_up_sessions(keep=1)
    assert list(outside.iterdir()) == []
