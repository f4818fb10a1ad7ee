"""`workbench memory {add,list,search,rm}`: the user's side of the agent's memory.

Each command runs inside a WorkSession so that saving, deleting and searching notes are events in the
project's audit log, exactly like the agent's own memory use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from workbench.cli.common import one_line, open_project, project_option, say
from workbench.memory import MemoryStore


@contextmanager
def _store(project_dir: Path) -> Iterator[MemoryStore]:
    from workbench.session import WorkSession

    project = open_project(project_dir)
    with WorkSession.open(project, trigger="cli:memory") as session:
        store = MemoryStore.for_session(session)
        try:
            yield store
        finally:
            store.close()


def _one_line(text: str, width: int = 80) -> str:
    """A note's title or line, shortened, on one line with every escape visible (notes are the model's)."""
    text = one_line(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group()
def memory() -> None:
    """Markdown notes kept across sessions, searchable by meaning."""


@memory.command()
@project_option
@click.argument("text")
@click.option("--title", help="Title (default: the first line of TEXT).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for more.")
def add(project_dir: Path, text: str, title: str | None, tags: tuple[str, ...]) -> None:
    """Add a note: TEXT, or - to read it from standard input."""
    if text == "-":
        text = click.get_text_stream("stdin").read()
    with _store(project_dir) as store:
        note = store.add(text, title=title, tags=tags)
    say(f"saved {one_line(note.id)}  {one_line(note.path)}")


@memory.command(name="list")
@project_option
def list_(project_dir: Path) -> None:
    """List notes, newest first: id, created, title."""
    with _store(project_dir) as store:
        notes = store.list()
    if not notes:
        say("no notes yet (add one: workbench memory add TEXT)", err=True)
        return
    for note in notes:
        tags = f"  [{', '.join(map(one_line, note.tags))}]" if note.tags else ""
        say(f"{one_line(note.id)}  {one_line(note.created[:16].replace('T', ' '))}  {_one_line(note.title, 70)}{tags}")


@memory.command()
@project_option
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="How many notes.")
def search(project_dir: Path, query: str, k: int) -> None:
    """Find notes by meaning and words; best first: id, score, title, first line."""
    with _store(project_dir) as store:
        hits = store.search(query, k=k)
    if not hits:
        say("no notes match", err=True)
        return
    for note, score in hits:
        line = note.first_line
        first = f"  {_one_line(line)}" if line and line != note.title else ""
        say(f"{one_line(note.id)}  {score:.3f}  {_one_line(note.title, 60)}{first}")


@memory.command()
@project_option
@click.argument("note_id", metavar="ID")
def rm(project_dir: Path, note_id: str) -> None:
    """Delete a note (its file and its index entry). ID may be a unique prefix."""
    with _store(project_dir) as store:
        note = store.remove(note_id)
    say(f"deleted {one_line(note.id)}  {_one_line(note.title, 60)}")


@memory.command()
@project_option
@click.option("--keep", type=click.IntRange(0), default=None,
              help="Session notes to keep as they are (default: [memory] keep_session_notes, 60).")
def rollup(project_dir: Path, keep: int | None) -> None:
    """Fold older agent-session notes into one digest note per month (their files move to archive/)."""
    with _store(project_dir) as store:
        done = store.roll_up_sessions(keep)
    if not done.archived:
        say("nothing to roll up", err=True)
        return
    say(f"rolled up {len(done.archived)} session notes into {', '.join(map(one_line, done.digests))}")
