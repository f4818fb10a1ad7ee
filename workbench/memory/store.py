"""MemoryStore: the one API over notes and their index, for the CLI, the TUI and the agent loop.

    store = MemoryStore.for_project(project, bus=ws.bus, session_id=ws.session_id, actor=ws.actor)
    note = store.add("The sales CSV uses semicolons ...", tags=["csv"])
    for note, score in store.search("how is the sales file delimited"):
        ...
    context = store.retrieve_for_task(task, token_budget=800)   # the agent loop

The Markdown files are the truth; the index follows them. Every open re-indexes what changed on disk
(mtime and size first, then a content hash, so a `touch` costs no embedding), which is how hand edits,
deletions and notes copied in from elsewhere are picked up without a file watcher. A damaged index is
rebuilt from the files. Writes and retrievals are published on the bus (when one is given), so they
reach the audit log like every other event.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from workbench import events
from workbench.confined import Entry
from workbench.errors import UsageError, WorkbenchError
from workbench.events import (
    MEMORY_DELETED,
    MEMORY_IGNORED,
    MEMORY_REINDEXED,
    MEMORY_RETRIEVED,
    MEMORY_ROLLED_UP,
    EventBus,
)
from workbench.inert import one_line
from workbench.memory import notes as notes_mod
from workbench.memory import rollup
from workbench.memory.context import render_context
from workbench.memory.embed import Embedder, default_embedder
from workbench.memory.fusion import (
    TEXT_WEIGHT,
    VECTOR_WEIGHT,
    content_words,
    fts_query,
    reciprocal_rank_fusion,
)
from workbench.memory.index import DAMAGE, INDEX_FILE, MemoryIndex, discard
from workbench.memory.notes import Note, NoteFile, NoteFolder

log = logging.getLogger(__name__)

__all__ = ["MEMORY_DELETED", "MEMORY_IGNORED", "MEMORY_REINDEXED", "MEMORY_RETRIEVED", "MEMORY_ROLLED_UP", "MemoryStore"]
CANDIDATES = 30  # per list before fusion: enough for a hit ranked low by one list to be rescued by the other
AUTO = object()


class MemoryStore:
    def __init__(self, memory_dir: Path, index_path: Path, *, embedder: Embedder | None | object = AUTO,
                 bus: EventBus | None = None, session_id: str = "", actor: str = "agent",
                 settings: Any | None = None):
        """`embedder`: AUTO finds the best model on this machine; None means full-text search only."""
        self.folder = NoteFolder(memory_dir, on_ignored=self._note_ignored)
        self.index_path = Path(index_path)
        self.embedder: Embedder | None = default_embedder(settings) if embedder is AUTO else embedder  # type: ignore[assignment]
        self.bus = bus
        self.session_id = session_id
        self.actor = actor
        memory_settings = getattr(settings, "memory", None)
        self.keep_session_notes = int(getattr(memory_settings, "keep_session_notes", rollup.DEFAULT_KEEP))
        self.folder.root.mkdir(parents=True, exist_ok=True)
        self.index = MemoryIndex.open(self.index_path)
        if self.index.rebuilt_because:
            self._emit(events.MemoryReindexed(rebuilt=True, reason=self.index.rebuilt_because))
        self.reindex()

    @classmethod
    def for_project(cls, project, **kwargs: Any) -> MemoryStore:
        """The project's memory: notes in `.workbench/memory/`, the index in `.workbench/memory-index.db`."""
        return cls(project.memory_dir, project.state_dir / INDEX_FILE, **kwargs)

    @classmethod
    def for_session(cls, session, **kwargs: Any) -> MemoryStore:
        """The memory of a WorkSession's project, publishing on the session's bus."""
        return cls.for_project(session.project, bus=session.bus, session_id=session.session_id,
                               actor=session.actor, settings=session.settings, **kwargs)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- events ------------------------------------------------------------------------------------
    def _emit(self, payload: events.Payload) -> None:
        if self.bus is not None:
            self.bus.emit(payload.KIND, self.session_id, self.actor, payload)

    def _note_ignored(self, message: str, entry: Entry) -> None:
        """A note file that is a symlink, a FIFO or a device: never read, and on the record (once per
        store and file) so a reviewer sees what a received project tried."""
        self._emit(events.MemoryIgnored(file=f".workbench/memory/{one_line(entry.path)}", kind=entry.kind,
                                        message=message,
                                        target=one_line(entry.target) if entry.target is not None else None))

    def _file_of(self, note: Note) -> str:
        return f".workbench/memory/{note.id}{notes_mod.SUFFIX}"

    # --- keeping the index in step with the files -------------------------------------------------------
    def reindex(self, full: bool = False, _own: str | None = None) -> dict[str, int]:
        """Bring the index up to date with the files; `full` re-reads and re-embeds every note."""
        try:
            return self._sync(full, _own)
        except DAMAGE as exc:  # damage found while working: start over from the files, once
            self._rebuild(f"{type(exc).__name__}: {exc}")
            return self._sync(True)

    def _rebuild(self, reason: str) -> None:
        log.warning("memory index damaged (%s): rebuilding from the notes", reason)
        self.index.close()
        discard(self.index_path)
        self.index = MemoryIndex.open(self.index_path)
        self._emit(events.MemoryReindexed(rebuilt=True, reason=reason))

    def _sync(self, full: bool, own: str | None = None) -> dict[str, int]:
        """One pass over the folder. `own`: a note this process just wrote (it has its own event)."""
        if self.embedder is not None and self.embedder.id != self.index.embedder_id:
            dims = int(self.embedder.embed(["dimension probe"]).shape[1])
            if self.index.use_embedder(self.embedder.id, dims):
                full = True
        elif self.embedder is None and self.index.embedder_id:
            self.index.use_embedder("", 0)
        rows = self.index.rows()
        files = {f.id: f for f in self.folder.scan()}
        changed: list[tuple[NoteFile, Note, str]] = []
        touched: list[NoteFile] = []
        for file in files.values():
            row = rows.get(file.id)
            fresh = row is not None and row.mtime_ns == file.mtime_ns and row.size == file.size
            if fresh and not full and (row.vectorized or self.embedder is None):
                continue
            try:
                note, raw = self.folder.read(file.id)
            except (OSError, UsageError):  # vanished or unreadable: treat as absent this time
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if row is not None and row.sha256 == digest and not full and (row.vectorized or self.embedder is None):
                touched.append(file)
            else:
                changed.append((file, note, digest))
        gone = [note_id for note_id in rows if note_id not in files]
        vectors = self._embed([note for _, note, _ in changed])
        with self.index.write():
            for file in touched:
                self.index.touch(file.id, file.mtime_ns, file.size)
            for i, (file, note, digest) in enumerate(changed):
                self.index.upsert(note.id, file.mtime_ns, file.size, digest, note.title, " ".join(note.tags),
                                  note.body, None if vectors is None else vectors[i])
            for note_id in gone:
                self.index.delete(note_id)
        stats = {"indexed": len(changed), "removed": len(gone), "notes": len(files)}
        outside = sorted([n.id for _, n, _ in changed if n.id != own] + gone)
        if outside:  # edits made by hand or by another process: on the record too
            self._emit(events.MemoryReindexed(**stats, rebuilt=False, ids=tuple(outside[:50])))
        return stats

    def _embed(self, items: list[Note]) -> np.ndarray | None:
        if self.embedder is None:
            return None
        return self.embedder.embed([note.search_text for note in items]) if items else np.zeros((0, 1))

    # --- the API -------------------------------------------------------------------------------------
    def add(self, text: str, title: str | None = None, tags: Iterable[str] = (), session: str | None = None) -> Note:
        """Save a new note (a new Markdown file) and index it."""
        body = text.strip()
        if not body:
            raise UsageError("a note needs some text")
        title = " ".join((title or notes_mod.default_title(body)).split()) or "Untitled note"
        try:
            note = self.folder.create(title, body, notes_mod.clean_tags(tags), session or self.session_id or None)
        except OSError as exc:
            raise WorkbenchError(f"cannot write the note in {self.folder.root}: {exc.strerror or exc}") from exc
        self.reindex(_own=note.id)
        raw = notes_mod.render(note).encode("utf-8")  # what was written (the name is not read back)
        self._emit(events.MemorySaved(id=note.id, title=note.title, tags=tuple(note.tags), file=self._file_of(note),
                                      sha256=hashlib.sha256(raw).hexdigest(), text=body[:2000], chars=len(body)))
        return note

    def list(self) -> list[Note]:
        """Every note, newest first."""
        found = []
        for file in self.folder.scan():
            try:
                found.append(self.folder.read(file.id)[0])
            except OSError:
                continue
        return sorted(found, key=lambda n: (n.created, n.id), reverse=True)

    def get(self, note_id: str) -> Note:
        """A note by id, or by a prefix that names exactly one note."""
        return self.folder.read(self._resolve(note_id))[0]

    def _resolve(self, note_id: str) -> str:
        notes_mod.check_id(note_id)
        ids = [f.id for f in self.folder.scan()]
        if note_id in ids:
            return note_id
        matches = [i for i in ids if i.startswith(note_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UsageError(f"no note '{note_id}'", "see: workbench memory list")
        raise UsageError(f"'{note_id}' names {len(matches)} notes: {', '.join(matches[:5])}", "give more of the id")

    def roll_up_sessions(self, keep: int | None = None) -> rollup.RollUp:
        """Fold all but the newest `keep` session notes (default: the setting) into monthly digests."""
        keep = self.keep_session_notes if keep is None else keep
        try:
            done = rollup.roll_up(self.folder, self.list(), keep)
        except OSError as exc:
            raise WorkbenchError(f"cannot roll up session notes in {self.folder.root}: {exc.strerror or exc}") from exc
        if done.archived:
            self.reindex()
            self._emit(events.MemoryRolledUp(archived=tuple(done.archived), digests=tuple(done.digests), kept=keep,
                                             archive=str(self.folder.root / rollup.ARCHIVE)))
        return done

    def remove(self, note_id: str) -> Note:
        """Delete a note's file and its index entry; returns the note as it was."""
        note_id = self._resolve(note_id)
        note, raw = self.folder.read(note_id)
        try:
            self.folder.delete(note_id)
        except OSError as exc:
            raise WorkbenchError(f"cannot delete {note.path}: {exc.strerror or exc}") from exc
        with self.index.write():
            self.index.delete(note_id)
        self._emit(events.MemoryDeleted(id=note.id, title=note.title, file=self._file_of(note),
                                        sha256=hashlib.sha256(raw).hexdigest()))
        return note

    def search(self, query: str, k: int = 5) -> list[tuple[Note, float]]:
        """The k best notes for `query` by fused rank (vector + full-text), best first, scores in (0, 1]."""
        hits = self._search(query, k)
        self._emit(events.MemoryRetrieved(purpose="search", query=query[:500], k=k,
                                          results=tuple({"id": n.id, "score": round(s, 4)} for n, s in hits)))
        return hits

    def _search(self, query: str, k: int, similarity: dict[str, float] | None = None) -> list[tuple[Note, float]]:
        if k <= 0 or not query.strip():
            return []
        try:
            return self._ranked(query, k, similarity)
        except DAMAGE as exc:
            self._rebuild(f"{type(exc).__name__}: {exc}")
            self._sync(True)
            return self._ranked(query, k, similarity)

    def _ranked(self, query: str, k: int, similarity: dict[str, float] | None) -> list[tuple[Note, float]]:
        pool = max(CANDIDATES, k * 3)
        lists: list[tuple[float, list[int]]] = []
        cosine: dict[int, float] = {}
        if self.embedder is not None and self.index.dimensions:
            vec_hits = self.index.vector_search(self.embedder.embed([query])[0], pool)
            cosine = dict(vec_hits)
            lists.append((VECTOR_WEIGHT, [r for r, _ in vec_hits]))
        match = fts_query(self.index.informative_words(content_words(query)))
        if match:
            weight = getattr(self.embedder, "text_weight", TEXT_WEIGHT) if lists else TEXT_WEIGHT
            lists.append((weight, self.index.text_search(match, pool)))
        fused = reciprocal_rank_fusion(lists)
        best = sorted(fused.items(), key=lambda item: -item[1])
        ids = self.index.ids_of(r for r, _ in best[: k * 2])
        results: list[tuple[Note, float]] = []
        for rowid, score in best:
            if rowid not in ids:
                continue
            try:
                note = self.folder.read(ids[rowid])[0]
            except OSError:  # deleted since the last sync
                continue
            if similarity is not None and rowid in cosine:
                similarity[note.id] = cosine[rowid]
            results.append((note, score))
            if len(results) == k:
                break
        return results

    def retrieve_for_task(self, task: str, token_budget: int, *, k: int = 8,
                          count_tokens: Callable[[str], int] | None = None) -> str:
        """The notes most relevant to `task`, as Markdown for the agent's context, within `token_budget`.

        Returns "" when nothing relevant is found or the budget is too small for even one note. Notes
        whose meaning is far from the task (low cosine similarity) are left out even if a word matched.
        """
        similarity: dict[str, float] = {}
        hits = self._search(task, k, similarity) if token_budget > 0 else []
        text, used = render_context(hits, similarity, token_budget, count_tokens,
                                    getattr(self.embedder, "min_similarity", None))
        self._emit(events.MemoryRetrieved(purpose="task", query=task[:500], k=k, token_budget=token_budget,
                                          results=tuple(used)))
        return text
