"""What an execution changed in the workspace: created, modified, deleted files with their hashes.

A snapshot records (size, mtime_ns) per file; only files whose entry differs after the run are hashed,
so a large workspace costs a directory walk, not a re-read. Package trees (.venv, .R) and Workbench's
own folder are skipped: an install reports packages, not ten thousand files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from workbench.sandbox.types import Artifact, FileChange

SKIP_DIRS = frozenset({".venv", ".R", ".workbench", ".workbench-runner", "__pycache__", ".ipynb_checkpoints"})
ARTIFACT_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".pdf": "application/pdf",
                 ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".html": "text/html"}

Snapshot = dict[str, tuple[int, int]]


def snapshot(root: Path, owner: tuple[int, int] | None = None) -> Snapshot:
    """(size, mtime) per file. With `owner`, also hand every file and folder (package trees included) to
    that uid:gid: a rootful engine run by root runs code as an unprivileged uid, and files the user drops
    into the workspace must stay writable for it (see policy.py)."""
    entries: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        if owner is not None:
            _own(folder, owner)
        for name in files:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if owner is not None and (st.st_uid, st.st_gid) != owner:
                _own(path, owner)
            if not _skipped(folder, root):
                entries[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
        if owner is None:
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
    return entries


def _skipped(folder: str, root: Path) -> bool:
    rel = os.path.relpath(folder, root)
    return rel != "." and any(part in SKIP_DIRS for part in Path(rel).parts)


def _own(path: str, owner: tuple[int, int]) -> None:
    try:
        st = os.lstat(path)
        if (st.st_uid, st.st_gid) != owner:
            os.lchown(path, *owner)
    except OSError:
        pass


def file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:  # unreadable (e.g. a fifo, or removed meanwhile)
        return None
    return digest.hexdigest()


def diff(root: Path, before: Snapshot, after: Snapshot) -> tuple[FileChange, ...]:
    changes: list[FileChange] = []
    for rel, (size, _mtime) in sorted(after.items()):
        if rel not in before:
            changes.append(FileChange(rel, "created", file_sha256(root / rel), size))
        elif before[rel] != after[rel]:
            changes.append(FileChange(rel, "modified", file_sha256(root / rel), size))
    for rel in sorted(before.keys() - after.keys()):
        changes.append(FileChange(rel, "deleted", None, None))
    return tuple(changes)


def artifacts(changes: tuple[FileChange, ...]) -> tuple[Artifact, ...]:
    """Rich results among the changes: images, PDFs, HTML written by the execution."""
    found = []
    for change in changes:
        mime = ARTIFACT_MIME.get(Path(change.path).suffix.lower())
        if mime and change.sha256 and change.change != "deleted":
            found.append(Artifact(change.path, mime, change.sha256, change.size or 0))
    return tuple(found)


def size_of(entries: Snapshot) -> int:
    return sum(size for size, _ in entries.values())
