"""The search index over the notes: SQLite with sqlite-vec (vec0) for meaning and FTS5 for words.

It lives in its own file, `.workbench/memory-index.db`, not in `state.db`: everything in it is derived
from the Markdown notes, so when it is damaged (or its schema or embedding model changes) it is simply
thrown away and rebuilt from the files, without putting sessions or schedules in `state.db` at risk.

Python's own sqlite3 here cannot load extensions, so this uses apsw. Tables:

    meta(key, value)                 schema version, embedder id, vector dimensions
    notes(rowid, id, mtime_ns, size, sha256, vectorized)
                                     one row per note file: how the re-index on open spots hand edits
    notes_fts  fts5(title, tags, body)            rowid = notes.rowid
    note_vectors vec0(embedding float[D])         unit vectors; L2 order == cosine order
    note_bits    vec0(embedding bit[D])           the same, one bit per dimension
    note_floats(rowid, embedding)                 the float vectors again, in a plain table: a vec0
                                                  point lookup reads a whole chunk (100 of them took
                                                  30-50 ms at 100k), a B-tree row is one page

Vector search is exact (a full vec0 scan) up to EXACT_LIMIT notes, which is every realistic memory.
Beyond it a vec0 scan of 100k float vectors takes 35-50 ms here, so a coarse pass over the bit vectors
(Hamming distance, 32x less data) picks COARSE_CANDIDATES candidates and those are re-scored exactly from
their float vectors (from note_floats). bench/memory.py measures both paths and their recall against a numpy scan.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import apsw
import numpy as np
import sqlite_vec

from workbench.wal import enable_wal

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
EXACT_LIMIT = 20_000
COARSE_CANDIDATES = 100  # bit-scan candidates re-scored exactly; at least 2 * k
INDEX_FILE = "memory-index.db"
TOKENIZER = ("porter", ["unicode61", "remove_diacritics", "2"])  # as notes_fts is created with
# A word found in more than COMMON_SHARE of the notes says almost nothing about which note is meant (its
# BM25 weight is near zero), yet FTS5 must score every note holding it: at 100k notes such a word cost
# 30-45 ms per search, the whole search budget. Above PRUNE_FROM notes, those words are left out of the
# full-text query (the rarest word is always kept).
COMMON_SHARE = 0.05
PRUNE_FROM = 5_000
# Errors that mean "this file is not a healthy index"; busy/locked are someone else's transaction.
DAMAGE = (apsw.CorruptError, apsw.NotADBError, apsw.SQLError, apsw.SchemaChangeError, apsw.FormatError,
          apsw.MismatchError, apsw.IOError)


class IndexDamaged(Exception):
    """The index file cannot be trusted; the caller rebuilds it from the notes."""


@dataclass(frozen=True)
class Row:
    rowid: int
    id: str
    mtime_ns: int
    size: int
    sha256: str
    vectorized: bool


def connect(path: Path | str) -> apsw.Connection:
    """An apsw connection with sqlite-vec loaded (WAL, so the agent and the CLI can share it)."""
    conn = apsw.Connection(str(path))
    conn.setbusytimeout(5000)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    if str(path) != ":memory:":
        enable_wal(lambda sql: str(next(iter(conn.execute(sql)))[0]), (apsw.BusyError, apsw.LockedError))
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA mmap_size=268435456")  # big indexes: scans read pages without copying
    return conn


class MemoryIndex:
    def __init__(self, path: Path | str):
        self.path = path
        self.conn = connect(path)
        self.rebuilt_because: str | None = None
        self._tokenize = None  # FTS5's own tokenizer, set up on first use by document_frequencies

    # --- opening, checking, rebuilding ------------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> MemoryIndex:
        """Open the index, discarding it first when it is damaged or from another schema version."""
        reason = None
        try:
            index = cls(path)
            reason = index._health()
            if reason is None:
                return index
            index.close()
        except DAMAGE as exc:
            reason = f"{type(exc).__name__}: {exc}"
        log.warning("memory index %s is unusable (%s): rebuilding it from the notes", path, reason)
        discard(path)
        index = cls(path)
        index._create()
        index.rebuilt_because = reason
        return index

    def _health(self) -> str | None:
        """None when healthy and current; otherwise why not. A new, empty file gets its schema here."""
        tables = {name for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            self._create()
            return None
        if not {"meta", "notes", "notes_fts"} <= tables:
            return "tables missing"
        if self.meta("schema") != str(SCHEMA_VERSION):
            return f"schema {self.meta('schema')} is not {SCHEMA_VERSION}"
        check = self.conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            return f"quick_check: {check[0][0] if check else 'no answer'}"
        # Touch the virtual tables: a damaged shadow table shows up only when read.
        self.conn.execute("SELECT count(*) FROM notes_fts").fetchall()
        if self.dimensions:
            self.conn.execute("SELECT count(*) FROM note_vectors").fetchall()
        return None

    def _create(self) -> None:
        with self.conn:
            self.conn.execute("""
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS notes(
                    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, mtime_ns INTEGER NOT NULL,
                    size INTEGER NOT NULL, sha256 TEXT NOT NULL, vectorized INTEGER NOT NULL DEFAULT 0);
                CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(
                    title, tags, body, tokenize='porter unicode61 remove_diacritics 2');
            """)
            self.set_meta("schema", str(SCHEMA_VERSION))

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction taken up front (BEGIN IMMEDIATE): with the agent and the CLI on one file,
        a deferred transaction that read first could fail to upgrade instead of waiting its turn."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        try:
            self.conn.close()
        except apsw.Error:
            pass

    # --- meta --------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET "
                          "value = excluded.value", (key, value))

    @property
    def embedder_id(self) -> str:
        return self.meta("embedder") or ""

    @property
    def dimensions(self) -> int:
        return int(self.meta("dimensions") or 0)

    def use_embedder(self, embedder_id: str, dimensions: int) -> bool:
        """Make the vector tables fit this embedder; True when existing vectors had to be dropped."""
        if embedder_id == self.embedder_id and dimensions == self.dimensions:
            return False
        with self.conn:
            self.conn.execute("DROP TABLE IF EXISTS note_vectors; DROP TABLE IF EXISTS note_bits; "
                              "DROP TABLE IF EXISTS note_floats")
            if dimensions:
                self.conn.execute("CREATE TABLE note_floats(rowid INTEGER PRIMARY KEY, embedding BLOB NOT NULL)")
                self.conn.execute(f"CREATE VIRTUAL TABLE note_vectors USING vec0(embedding float[{dimensions}])")
                self.conn.execute(f"CREATE VIRTUAL TABLE note_bits USING vec0(embedding bit[{dimensions}])")
            self.conn.execute("UPDATE notes SET vectorized = 0")
            self.set_meta("embedder", embedder_id)
            self.set_meta("dimensions", str(dimensions))
        return True

    # --- rows ----------------------------------------------------------------------------------------
    def rows(self) -> dict[str, Row]:
        return {r[1]: Row(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in self.conn.execute(
            "SELECT rowid, id, mtime_ns, size, sha256, vectorized FROM notes")}

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM notes").fetchone()[0])

    def upsert(self, note_id: str, mtime_ns: int, size: int, sha256: str, title: str, tags: str, body: str,
               vector: np.ndarray | None) -> int:
        """Insert or replace one note's row, text and vector (call inside a transaction)."""
        old = self.conn.execute("SELECT rowid FROM notes WHERE id = ?", (note_id,)).fetchone()
        if old:
            self._remove_rowid(old[0])
        self.conn.execute("INSERT INTO notes(id, mtime_ns, size, sha256, vectorized) VALUES(?, ?, ?, ?, ?)",
                          (note_id, mtime_ns, size, sha256, int(vector is not None)))
        rowid = self.conn.last_insert_rowid()
        self.conn.execute("INSERT INTO notes_fts(rowid, title, tags, body) VALUES(?, ?, ?, ?)",
                          (rowid, title, tags, body))
        if vector is not None:
            self.set_vector(rowid, vector)
        return rowid

    def set_vector(self, rowid: int, vector: np.ndarray) -> None:
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        self.conn.execute("DELETE FROM note_vectors WHERE rowid = ?", (rowid,))
        self.conn.execute("DELETE FROM note_bits WHERE rowid = ?", (rowid,))
        self.conn.execute("INSERT INTO note_vectors(rowid, embedding) VALUES(?, ?)", (rowid, blob))
        self.conn.execute("INSERT OR REPLACE INTO note_floats(rowid, embedding) VALUES(?, ?)", (rowid, blob))
        self.conn.execute("INSERT INTO note_bits(rowid, embedding) VALUES(?, vec_quantize_binary(vec_f32(?)))",
                          (rowid, blob))
        self.conn.execute("UPDATE notes SET vectorized = 1 WHERE rowid = ?", (rowid,))

    def touch(self, note_id: str, mtime_ns: int, size: int) -> None:
        self.conn.execute("UPDATE notes SET mtime_ns = ?, size = ? WHERE id = ?", (mtime_ns, size, note_id))

    def delete(self, note_id: str) -> bool:
        row = self.conn.execute("SELECT rowid FROM notes WHERE id = ?", (note_id,)).fetchone()
        if not row:
            return False
        self._remove_rowid(row[0])
        return True

    def _remove_rowid(self, rowid: int) -> None:
        self.conn.execute("DELETE FROM notes WHERE rowid = ?", (rowid,))
        self.conn.execute("DELETE FROM notes_fts WHERE rowid = ?", (rowid,))
        if self.dimensions:
            self.conn.execute("DELETE FROM note_vectors WHERE rowid = ?", (rowid,))
            self.conn.execute("DELETE FROM note_bits WHERE rowid = ?", (rowid,))
            self.conn.execute("DELETE FROM note_floats WHERE rowid = ?", (rowid,))

    def ids_of(self, rowids: Iterable[int]) -> dict[int, str]:
        wanted = list(rowids)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        return dict(self.conn.execute(f"SELECT rowid, id FROM notes WHERE rowid IN ({marks})", wanted))

    # --- search --------------------------------------------------------------------------------------
    def vector_search(self, query: np.ndarray, k: int, exact: bool | None = None) -> list[tuple[int, float]]:
        """[(rowid, cosine similarity)] best first. `exact` None: exact up to EXACT_LIMIT vectors."""
        if not self.dimensions or k <= 0:
            return []
        blob = np.ascontiguousarray(query, dtype=np.float32).tobytes()
        if exact is None:
            exact = self.count() <= EXACT_LIMIT
        if exact:
            rows = self.conn.execute("SELECT rowid, distance FROM note_vectors WHERE embedding MATCH ? AND k = ?",
                                     (blob, k)).fetchall()
            return [(rowid, 1.0 - dist * dist / 2.0) for rowid, dist in rows]
        candidates = [r for (r,) in self.conn.execute(
            "SELECT rowid FROM note_bits WHERE embedding MATCH vec_quantize_binary(vec_f32(?)) AND k = ?",
            (blob, max(COARSE_CANDIDATES, 2 * k)))]
        if not candidates:
            return []
        marks = ",".join("?" * len(candidates))
        found = self.conn.execute(f"SELECT rowid, embedding FROM note_floats WHERE rowid IN ({marks})",
                                  candidates).fetchall()
        matrix = np.frombuffer(b"".join(blob for _, blob in found), dtype=np.float32).reshape(len(found), -1)
        scores = matrix @ np.asarray(query, dtype=np.float32)
        order = np.argsort(-scores)[:k]
        return [(found[i][0], float(scores[i])) for i in order]

    def informative_words(self, words: list[str]) -> list[str]:
        """`words` without those in more than COMMON_SHARE of the notes (only in a large index)."""
        if len(words) < 2:
            return words
        total = self.count()
        if total < PRUNE_FROM:
            return words
        frequency = self.document_frequencies(words)
        kept = [w for w in words if frequency[w] <= COMMON_SHARE * total]
        return kept or [min(words, key=lambda w: frequency[w])]

    def document_frequencies(self, words: list[str]) -> dict[str, int]:
        """How many notes hold each word, as FTS5 sees it (stemmed by the index's own tokenizer)."""
        if self._tokenize is None:
            # A temp table: a view of notes_fts's own statistics, nothing stored in the file.
            self.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.notes_vocab "
                              "USING fts5vocab(main, notes_fts, 'row')")
            self._tokenize = self.conn.fts5_tokenizer(*TOKENIZER)
        found = {}
        for word in words:
            tokens = [t[2] for t in self._tokenize(word.encode("utf-8"), apsw.FTS5_TOKENIZE_QUERY, None)
                      if len(t) > 2]
            counts = [self.conn.execute("SELECT doc FROM temp.notes_vocab WHERE term = ?", (token,)).fetchone()
                      for token in tokens]
            found[word] = min((c[0] if c else 0) for c in counts) if counts else 0
        return found

    def text_search(self, match: str, k: int) -> list[int]:
        """Rowids by BM25 (title counts double, tags one and a half), best first."""
        return [r for (r,) in self.conn.execute(
            "SELECT rowid FROM notes_fts WHERE notes_fts MATCH ? ORDER BY bm25(notes_fts, 2.0, 1.5, 1.0) "
            "LIMIT ?", (match, k))]


def discard(path: Path) -> None:
    """Move a damaged index aside (one copy kept for a post-mortem) with its WAL and shared memory."""
    path = Path(path)
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass
    try:
        os.replace(path, path.with_name(path.name + ".damaged"))
    except FileNotFoundError:
        pass
