"""Notes as Markdown files: one file per note under `.workbench/memory/`, the source of truth.

The files are what the user reads and edits, so everything else (the search index) is derived from them
and can be thrown away. A note file looks like this:

    ---
    title: Sales CSV format
    created: 2026-11-26T09:31:00+00:00
    session: 3f2a...
    tags: [csv, sales]
    ---

    The sales CSV uses semicolons as separators and a comma as the decimal mark.

The front-matter is a small, forgiving subset of YAML read by hand (no YAML dependency): a file the user
wrote without one is still a note (title from its first line, created from its mtime). A note's id is its
file name without `.md`; generated names are a slug of the title plus a short random suffix, so they are
safe on every filesystem and never collide. Writes are atomic (temporary file, fsync, rename), so a crash
leaves either the old note or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from workbench.errors import UsageError

SUFFIX = ".md"
TITLE_MAX = 120
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
_TAG_RE = re.compile(r"[^a-z0-9_.-]+")
_FRONT = "---"


@dataclass(frozen=True)
class Note:
    id: str
    title: str
    body: str
    created: str
    session: str | None = None
    tags: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def first_line(self) -> str:
        """The first non-empty line of the body (what a listing shows beside the title)."""
        for line in self.body.splitlines():
            if line.strip():
                return line.strip()
        return ""

    @property
    def search_text(self) -> str:
        """What the embedder sees: title, tags and body, so all three can match a query.

        A title made from the body's first line is not repeated (it would double that line's weight).
        """
        tags = f"Tags: {', '.join(self.tags)}\n" if self.tags else ""
        head = "" if self.title == self.first_line else f"{self.title}\n"
        return f"{head}{tags}\n{self.body}".strip()


def default_title(text: str) -> str:
    """A title from the first non-empty line, cut at a word boundary (Markdown heading marks dropped)."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            if len(line) <= TITLE_MAX:
                return line
            cut = line[:TITLE_MAX].rsplit(" ", 1)[0]
            return (cut or line[:TITLE_MAX]).rstrip(" ,;:") + "…"
    return "Untitled note"


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Lower-case tags of letters, digits, `_ . -`; empty and duplicate tags dropped, order kept."""
    seen: list[str] = []
    for tag in tags:
        for part in str(tag).split(","):
            norm = _TAG_RE.sub("-", part.strip().lower()).strip("-")
            if norm and norm not in seen:
                seen.append(norm)
    return tuple(seen)


def slugify(text: str, max_len: int = 32) -> str:
    """ASCII, lower case, words joined by `-`: safe as a file name everywhere."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len:
            break
        slug = candidate
    return slug or "note"


def check_id(note_id: str) -> str:
    """Refuse ids that could name a file outside the memory folder (user input reaches this)."""
    if not _ID_RE.match(note_id) or "\\" in note_id:
        raise UsageError(f"'{note_id}' is not a note id", "see: workbench memory list")
    return note_id


# --- the file format ----------------------------------------------------------------------------------
def render(note: Note) -> str:
    """The Markdown text of a note, front-matter first."""
    lines = [_FRONT, f"title: {_scalar(note.title)}", f"created: {note.created}"]
    lines.append(f"session: {_scalar(note.session or '')}")
    lines.append(f"tags: [{', '.join(note.tags)}]")
    lines += [_FRONT, "", note.body.rstrip("\n"), ""]
    return "\n".join(lines)


def _scalar(value: str) -> str:
    value = " ".join(value.split())
    if value != value.strip() or value[:1] in "\"'[{&*!|>%@`#" or ": " in value:
        return json.dumps(value, ensure_ascii=False)
    return value


def _unscalar(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return str(json.loads(raw))
        except json.JSONDecodeError:
            return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw


def parse(text: str, note_id: str, path: Path | None = None, mtime: float | None = None) -> Note:
    """Read a note file's text. Never fails: a missing or broken front-matter just means defaults."""
    meta: dict[str, str] = {}
    body = text
    lines = text.splitlines()
    if lines and lines[0].strip() == _FRONT:
        for end in range(1, len(lines)):
            if lines[end].strip() in (_FRONT, "..."):
                for line in lines[1:end]:
                    key, sep, value = line.partition(":")
                    if sep and key.strip():
                        meta[key.strip().lower()] = value.strip()
                body = "\n".join(lines[end + 1:])
                break
    body = body.strip("\n")
    title = _unscalar(meta.get("title", "")) or default_title(body)
    created = _unscalar(meta.get("created", "")) or _iso(mtime)
    session = _unscalar(meta.get("session", "")) or None
    raw_tags = meta.get("tags", "").strip()
    if raw_tags.startswith("[") and raw_tags.endswith("]"):
        raw_tags = raw_tags[1:-1]
    tags = clean_tags(_unscalar(t) for t in raw_tags.split(","))
    return Note(id=note_id, title=title, body=body, created=created, session=session, tags=tags, path=path)


def _iso(timestamp: float | None) -> str:
    when = datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else datetime.now(UTC)
    return when.isoformat(timespec="seconds")


# --- the folder ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteFile:
    """A note file as seen by a directory scan: enough to tell whether it changed."""

    id: str
    path: Path
    mtime_ns: int
    size: int


class NoteFolder:
    """The memory folder: list, read, write atomically, delete."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def scan(self) -> Iterator[NoteFile]:
        """Every `*.md` directly in the folder (dotfiles and our temporary files skipped)."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIX):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:  # vanished between listing and stat
                continue
            yield NoteFile(id=entry.name[: -len(SUFFIX)], path=Path(entry.path), mtime_ns=st.st_mtime_ns,
                           size=st.st_size)

    def path_of(self, note_id: str) -> Path:
        return self.root / f"{check_id(note_id)}{SUFFIX}"

    def read(self, note_id: str) -> tuple[Note, bytes]:
        """The note and the exact bytes it was parsed from (their hash tells edits apart)."""
        path = self.path_of(note_id)
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
        return parse(raw.decode("utf-8", errors="replace"), note_id, path, mtime), raw

    def create(self, title: str, body: str, tags: tuple[str, ...], session: str | None,
               created: str | None = None) -> Note:
        """Write a new note under a fresh, safe name; never overwrites an existing file."""
        self.root.mkdir(parents=True, exist_ok=True)
        base = slugify(title)
        for _ in range(20):
            note_id = f"{base}-{secrets.token_hex(2)}"
            note = Note(id=note_id, title=title, body=body, created=created or _iso(None), session=session,
                        tags=tags, path=self.path_of(note_id))
            if self._write_new(note):
                return note
        raise OSError(f"cannot find a free file name for a note in {self.root}")

    def _written(self, note: Note) -> str:
        """A temporary file in the folder holding the note, on disk (fsync'd); the caller moves it in place."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(render(note).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            _discard(tmp)
            raise
        return tmp

    def _write_new(self, note: Note) -> bool:
        assert note.path is not None
        tmp = self._written(note)
        try:
            try:
                os.link(tmp, note.path)  # atomic and exclusive: fails when the name is taken
            except FileExistsError:
                return False
            except OSError:  # a filesystem without hard links: exclusive create, then atomic rename
                try:
                    os.close(os.open(note.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                except FileExistsError:
                    return False
                os.replace(tmp, note.path)
                tmp = ""
            return True
        finally:
            if tmp:
                _discard(tmp)

    def replace(self, note: Note) -> None:
        """Write `note` under its own id, replacing the file atomically (a digest that grows)."""
        tmp = self._written(note)
        try:
            os.replace(tmp, self.path_of(note.id))
        except BaseException:
            _discard(tmp)
            raise

    def delete(self, note_id: str) -> None:
        self.path_of(note_id).unlink()


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
