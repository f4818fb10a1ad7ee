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
leaves either the old note or the new one, never half of one. Every read and write goes through
`workbench.confined` rooted at the memory folder: a note that is a symlink or a FIFO is ignored, never read.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from workbench.confined import Confined, Entry, Refused
from workbench.errors import UsageError
from workbench.inert import one_line

log = logging.getLogger(__name__)

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
NOTE_MODE = 0o600  # notes are the user's own words: readable by them alone, as before
NOTE_MAX_BYTES = 1 << 20  # a note is read up to here: a sparse "note" of 8 GB costs 1 MiB, not 8 GB


class NoteIgnored(FileNotFoundError):
    """A note file that is not a regular file (a symlink, a FIFO, a device): ignored, never read.

    A `FileNotFoundError`, so every caller treats it as a note that is not there. Its text is one line,
    e.g. "x.md is a symlink to /etc/passwd: ignored, not followed"."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "ignored"


@dataclass(frozen=True)
class NoteFile:
    """A note file as seen by a directory scan: enough to tell whether it changed."""

    id: str
    path: Path
    mtime_ns: int
    size: int


class NoteFolder:
    """The memory folder: list, read, write atomically, delete.

    A project folder someone sent you is theirs down to its notes, so the folder is opened through
    `workbench.confined`: only regular files directly in it are notes; a symlink (to ~/.ssh/id_rsa, say),
    a FIFO (which would hang a read) or a device is ignored with a warning and never opened, and every
    read is bounded. Writes go through a temporary file the confined folder creates with O_EXCL and a
    rename, so a planted symlink is replaced, never written through. `on_ignored(message, entry)` hears
    each ignored file once (the store puts it on the record)."""

    def __init__(self, root: Path, on_ignored: Callable[[str, Entry], None] | None = None):
        self.root = Path(root)
        self.on_ignored = on_ignored
        self._warned: set[tuple[str, str, str | None]] = set()

    def _open(self) -> Confined:
        return Confined(self.root)

    def _ignore(self, entry: Entry, verb: str) -> NoteIgnored:
        message = f"memory note {entry.describe()}: ignored, not {verb}"
        key = (entry.path, entry.kind, entry.target)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)
            if self.on_ignored is not None:
                self.on_ignored(message, entry)
        return NoteIgnored(message)

    def scan(self) -> Iterator[NoteFile]:
        """Every regular `*.md` directly in the folder (dotfiles and our temporary files skipped)."""
        try:
            with self._open() as folder:
                entries = folder.listdir()
        except FileNotFoundError:
            return
        except Refused as exc:  # the memory folder itself is a symlink: no notes, said once
            if ("", "root", None) not in self._warned:
                self._warned.add(("", "root", None))
                log.warning("memory folder ignored: %s", exc)
            return
        for entry in entries:
            name = entry.path
            if name.startswith(".") or not name.endswith(SUFFIX) or entry.kind == "dir":
                continue
            if entry.kind != "file":
                self._ignore(entry, "followed" if entry.kind == "symlink" else "opened")
                continue
            yield NoteFile(id=name[: -len(SUFFIX)], path=self.root / name, mtime_ns=entry.mtime_ns,
                           size=entry.size)

    def path_of(self, note_id: str) -> Path:
        return self.root / self._name(note_id)

    @staticmethod
    def _name(note_id: str) -> str:
        return f"{check_id(note_id)}{SUFFIX}"

    def read(self, note_id: str) -> tuple[Note, bytes]:
        """The note and the exact bytes it was parsed from (their hash tells edits apart). A note file
        that is not a regular file raises `NoteIgnored`; one over NOTE_MAX_BYTES is cut there, with a
        warning."""
        name = self._name(note_id)
        try:
            with self._open() as folder:
                entry = folder.lstat(name)
                if entry is None:
                    raise FileNotFoundError(2, "no such note", name)
                if entry.kind != "file":
                    raise self._ignore(entry, "followed" if entry.kind == "symlink" else "opened")
                read = folder.read(name, NOTE_MAX_BYTES)
        except Refused as exc:  # swapped between the look and the open, or the folder is a symlink
            raise NoteIgnored(f"memory note {one_line(exc)}") from exc
        if read.truncated:
            log.warning("memory note %s is %d bytes: only the first %d are read", one_line(name), read.size,
                        NOTE_MAX_BYTES)
        raw = read.data
        mtime = entry.mtime_ns / 1e9
        return parse(raw.decode("utf-8", errors="replace"), note_id, self.root / name, mtime), raw

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

    def _write_new(self, note: Note) -> bool:
        """Exclusive and atomic: the note is written to a temporary file, then hard-linked to its name,
        which fails when anything (a file, a symlink) already has it."""
        data = render(note).encode("utf-8")
        name = self._name(note.id)
        with self._open() as folder:
            try:
                folder.write(name, data, mode=NOTE_MODE, exclusive=True)
            except FileExistsError:
                return False
            except OSError as exc:  # a filesystem without hard links: look, then rename (a narrow race)
                if exc.errno not in _NO_LINKS:
                    raise
                if folder.lstat(name) is not None:
                    return False
                folder.write(name, data, mode=NOTE_MODE)
        return True

    def replace(self, note: Note) -> None:
        """Write `note` under its own id, replacing the file atomically (a digest that grows); a symlink
        at the name is replaced, never written through."""
        with self._open() as folder:
            folder.write(self._name(note.id), render(note).encode("utf-8"), mode=NOTE_MODE)

    def archive(self, note_id: str, folder_name: str) -> None:
        """Move a note's file into the sub-folder `folder_name` (made when missing); a sub-folder that is
        a symlink is refused, so no note is ever moved out of the memory folder."""
        name = self._name(note_id)
        with self._open() as folder:
            folder.rename(name, f"{check_id(folder_name)}/{name}")

    def delete(self, note_id: str) -> None:
        with self._open() as folder:
            folder.unlink(self._name(note_id))


_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}
