"""What an execution changed in the workspace: created, modified, deleted entries with their hashes.

Everything here goes through `workbench.confined`: code controls every name in the workspace, so nothing is
followed (a symlink is recorded as a symlink, with its target string and no hash), nothing but a regular file
is opened (a FIFO, socket or device is recorded as what it is), and folders are walked by fd, so swapping one
for a symlink mid-walk leads nowhere.

A snapshot keeps each entry's `lstat` signature: size, mtime, ctime, inode and device. Only entries whose
signature differs after the run are hashed, so a large workspace costs a directory walk, not a re-read. mtime
alone would not do: code can rewrite a file at the same size and set its mtime back (`os.utime`), but every
write and every utime moves ctime, which only the kernel sets (changing it back needs CAP_SYS_TIME, which the
sandbox never has), and a file replaced by another moves the inode.

Workbench's own top-level folders (the package trees .venv, .R and .conda, and .workbench) are not listed
entry by entry: an install reports packages, not ten thousand files. Only at the top: a `__pycache__` or a
folder named `.venv` deeper down is the user's and is recorded like anything else.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.confined import Confined, Entry, Refused
from workbench.inert import one_line
from workbench.sandbox.types import Artifact, FileChange

OWN_TOP_FOLDERS = frozenset({".venv", ".R", ".conda", ".workbench"})
ARTIFACT_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".pdf": "application/pdf",
                 ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".html": "text/html"}
NOTED_SPECIALS = 5  # notes name at most this many symlinks and special files; the rest are counted

Snapshot = dict[str, Entry]


def own_folder(path: str) -> bool:
    """True for a path inside one of Workbench's own top-level folders (or that folder itself)."""
    return path.split("/", 1)[0] in OWN_TOP_FOLDERS


def snapshot(root: Path, owner: tuple[int, int] | None = None) -> Snapshot:
    """Every entry of the workspace but folders (and but Workbench's own top-level trees), by its path.

    With `owner`, also hand every entry (package trees included) to that uid:gid without following any:
    a rootful engine run by root runs code as an unprivileged uid, and files the user drops into the
    workspace must stay writable for it (see policy.py)."""
    entries: Snapshot = {}
    with Confined(root) as folder:
        if owner is not None:
            st = os.fstat(folder.fd)
            if (st.st_uid, st.st_gid) != owner:
                os.fchown(folder.fd, *owner)
        skip = None if owner is not None else (lambda entry: own_folder(entry.path))
        for fd, entry in folder.walk_at(skip=skip):
            if owner is not None and (entry.uid, entry.gid) != owner:
                entry = _hand_to(folder, fd, entry, owner)
            if entry.kind != "dir" and not own_folder(entry.path):
                entries[entry.path] = entry
    return entries


def _hand_to(folder: Confined, dir_fd: int, entry: Entry, owner: tuple[int, int]) -> Entry:
    """chown the entry (never through a symlink) and return its new signature: chown moves ctime, which
    must not read as a change the code made."""
    name = entry.path.rsplit("/", 1)[-1]
    try:
        os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return entry  # removed meanwhile
    return folder.lstat_at(dir_fd, name, entry.path) or entry


def diff(root: Path, before: Snapshot, after: Snapshot) -> tuple[FileChange, ...]:
    changes: list[FileChange] = []
    with Confined(root) as folder:
        for rel, entry in sorted(after.items()):
            old = before.get(rel)
            if old is None:
                changes.append(_change(folder, entry, "created"))
            elif old.kind != entry.kind or old.signature != entry.signature:
                changes.append(_change(folder, entry, "modified"))
    for rel in sorted(before.keys() - after.keys()):
        old = before[rel]
        changes.append(FileChange(rel, "deleted", None, None, kind=old.kind))
    return tuple(changes)


def _change(folder: Confined, entry: Entry, change: str) -> FileChange:
    if entry.kind != "file":
        return FileChange(entry.path, change, None, entry.size if entry.kind == "symlink" else None,  # type: ignore[arg-type]
                          kind=entry.kind, target=entry.target)
    try:
        digest: str | None = folder.sha256(entry.path)
    except Refused:  # swapped for something else since the walk: recorded as what it is now
        try:
            now = folder.lstat(entry.path)
        except (Refused, OSError):  # a folder above it was swapped for a link too: nothing to follow there
            now = None
        if now is not None and now.kind != "file":
            return _change(folder, now, change)
        digest = None
    except OSError:  # removed meanwhile
        digest = None
    return FileChange(entry.path, change, digest, entry.size)  # type: ignore[arg-type]


def notes(changes: tuple[FileChange, ...]) -> tuple[str, ...]:
    """One line per symlink or special file the execution left (at most NOTED_SPECIALS named)."""
    specials = [c for c in changes if c.kind != "file" and c.change != "deleted"]
    lines = []
    for change in specials[:NOTED_SPECIALS]:
        if change.kind == "symlink":
            lines.append(f"{one_line(change.path)} is a symlink to {one_line(change.target or '?')}: "
                         "recorded as a symlink, not followed")
        else:
            lines.append(f"{one_line(change.path)} is a {change.kind}: recorded as one, never opened")
    if len(specials) > NOTED_SPECIALS:
        lines.append(f"and {len(specials) - NOTED_SPECIALS} more symlinks or special files, recorded the same way")
    return tuple(lines)


def artifacts(changes: tuple[FileChange, ...]) -> tuple[Artifact, ...]:
    """Rich results among the changes: images, PDFs, HTML written by the execution (regular files only)."""
    found = []
    for change in changes:
        mime = ARTIFACT_MIME.get(Path(change.path).suffix.lower())
        if mime and change.kind == "file" and change.sha256 and change.change != "deleted":
            found.append(Artifact(change.path, mime, change.sha256, change.size or 0))
    return tuple(found)


def size_of(entries: Snapshot) -> int:
    return sum(entry.size for entry in entries.values() if entry.kind == "file")
