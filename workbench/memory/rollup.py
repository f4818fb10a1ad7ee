"""Session notes roll up, so memory stays about what matters rather than every run ever made.

Every agent run ends with a session note (tags `session`, `agent`). Left alone they pile up: retrieval for a
new task then competes with hundreds of near-identical "Agent session succeeded: ..." notes. Roll-up keeps
the newest `keep` session notes (`[memory] keep_session_notes`) exactly as they are. Each older one becomes
one line in the digest of its month, `sessions-YYYY-MM.md`: a note like any other (searchable, editable,
tagged `digest`), whose lines keep the date, the outcome and the task. The older note's file moves to
`memory/archive/`, which is not indexed: nothing is deleted, and moving a file back brings the note back.

It runs after each session note is written and on demand (`workbench memory rollup`). Each roll-up is one
`memory.rolled_up` event, so the audit log records which notes moved where.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from workbench.memory.notes import Note, NoteFolder

SESSION_TAG = "session"
DIGEST_TAGS = ("digest", "sessions")
ARCHIVE = "archive"
DEFAULT_KEEP = 60


@dataclass(frozen=True)
class RollUp:
    archived: tuple[str, ...]  # ids of the session notes moved to the archive
    digests: tuple[str, ...]  # ids of the digests written or extended


def digest_id(month: str) -> str:
    return f"sessions-{month}"


def digest_line(note: Note) -> str:
    outcome = "failed" if "failure" in note.tags else "succeeded" if "success" in note.tags else "ended"
    task = note.title.split(": ", 1)[1] if ": " in note.title else note.title
    return f"- {note.created[:10]} {outcome}: {task} (archived as {note.id})"


def session_notes(notes: list[Note]) -> list[Note]:
    """Session notes, oldest first; digests are never among them."""
    found = [n for n in notes if SESSION_TAG in n.tags and "digest" not in n.tags]
    return sorted(found, key=lambda n: (n.created, n.id))


def roll_up(folder: NoteFolder, notes: list[Note], keep: int) -> RollUp:
    """Fold every session note but the newest `keep` into its month's digest; `keep` 0 keeps them all."""
    sessions = session_notes(notes)
    if keep <= 0 or len(sessions) <= keep:
        return RollUp((), ())
    older = sessions[: len(sessions) - keep]
    by_month: dict[str, list[Note]] = defaultdict(list)
    for note in older:
        by_month[note.created[:7] or "undated"].append(note)
    archived: list[str] = []
    digests: list[str] = []
    for month, moved in sorted(by_month.items()):
        note_id = digest_id(month)
        try:
            existing, _ = folder.read(note_id)
        except FileNotFoundError:
            existing = None
        lines = existing.body.splitlines() if existing else []
        lines += [digest_line(n) for n in moved if f"(archived as {n.id})" not in (existing.body if existing else "")]
        digest = Note(id=note_id, title=f"Agent sessions in {month} (digest)", body="\n".join(lines),
                      created=existing.created if existing else moved[0].created, session=None,
                      tags=existing.tags if existing else DIGEST_TAGS, path=folder.path_of(note_id))
        folder.replace(digest)  # first the digest, then the moves: a crash between leaves a duplicate, no loss
        digests.append(note_id)
        for note in moved:
            folder.archive(note.id, ARCHIVE)  # through the confined folder: an `archive` symlink is refused
            archived.append(note.id)
    return RollUp(tuple(archived), tuple(digests))
