"""The throw-away workspace a replay runs in, restored to each execution's recorded inputs.

It is a new folder under the project's state folder (`.workbench/replay-*`, never inside the workspace, and
removed at the end), mounted at /workspace in place of the real one: the replayed code can see and change
only this copy. What goes in:

  * Workbench's own environments (.venv, .R, .conda) copied whole from the real workspace at the start, so
    the code finds its packages; whether they are still what the execution ran with is the environment
    digest's to say (`workbench.replay.run` compares it with the recorded one);
  * before each execution, every file it read (path and SHA-256 in its `exec.finished`): the copy already
    holds it when an earlier replayed execution of the session produced it (its hash must match the
    recorded read's), else the real workspace's current file is copied in only when its hash matches.
    A missing or changed input is a problem the replay reports; nothing is ever substituted.

Every access to either folder goes through `workbench.confined` (nothing followed, nothing but a regular file
opened): the replayed code controls every byte of the copy, and the real workspace's code did of it. Files
are copied, never hard-linked, so nothing written in the copy can reach the real workspace's inodes. What a
recorded execution saw but did not read (a folder listing, a file it only overwrote) is not restored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from workbench.confined import Confined, Refused
from workbench.inert import one_line
from workbench.replay.record import Recorded
from workbench.sandbox.workspace import own_folder

COPIED_TREES = (".venv", ".R", ".conda")  # the environments code imports from


@dataclass
class Restored:
    """What restoring one execution's inputs found: where each came from, and what could not be restored."""

    from_replay: list[str] = field(default_factory=list)
    from_workspace: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def short(digest: str | None) -> str:
    return (digest or "none")[:12]


class Scratch:
    """One replay's copy of the workspace (`workspace`), made empty and removed by `close`."""

    def __init__(self, state_dir: Path, real_workspace: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="replay-", dir=state_dir))
        self.workspace = self.root / "workspace"
        self.workspace.mkdir()
        self.real = real_workspace
        self.notes: list[str] = []

    # --- the environments ---------------------------------------------------------------------------
    def copy_environments(self) -> int:
        """Copy .venv, .R and .conda of the real workspace into the copy; returns the files copied."""
        copied = skipped = 0
        with Confined(self.real) as real, Confined(self.workspace) as copy:
            for top in COPIED_TREES:
                entry = real.lstat(top)
                if entry is None:
                    continue
                if entry.kind != "dir":
                    self.notes.append(f"{entry.describe()} in the workspace: not copied")
                    continue
                copy.mkdir(top)
                for found in real.walk(top):
                    try:
                        if found.kind == "dir":
                            copy.mkdir(found.path)
                        elif found.kind == "file":
                            copy.copy_from(real, found.path, found.path)
                            copied += 1
                        elif found.kind == "symlink" and found.target is not None:
                            copy.symlink(found.target, found.path)  # a venv's bin/python: made, not followed
                        else:
                            skipped += 1
                    except (Refused, OSError):
                        skipped += 1  # changed while copied: the environment digest says if it matters
        if skipped:
            self.notes.append(f"{skipped} entries of the workspace's environments were not copied (special "
                              "files, or changed while copied)")
        return copied

    # --- one execution's inputs ------------------------------------------------------------------------
    def restore(self, recorded: Recorded) -> Restored:
        """Put each file `recorded` read in place, from the earlier replayed executions or the workspace."""
        done = Restored()
        own_made = {f.get("path") for f in recorded.finished.files
                    if isinstance(f, dict) and f.get("change") == "created"}
        with Confined(self.real) as real, Confined(self.workspace) as copy:
            for read in recorded.finished.files_read:
                if not isinstance(read, dict) or not isinstance(read.get("path"), str):
                    continue
                path = read["path"]
                if own_folder(path) or path in own_made:
                    continue  # its own output, read back: not an input
                problem = self._restore_one(real, copy, path, read, done)
                if problem:
                    done.problems.append(problem)
        return done

    def _restore_one(self, real: Confined, copy: Confined, path: str, read: dict, done: Restored) -> str:
        name = one_line(path)
        kind = read.get("kind") or "file"
        want = read.get("sha256")
        if kind != "file":
            return f"input {name}: it was {kind} when read, so its content was not recorded"
        if not isinstance(want, str):
            return f"input {name}: read but not hashed (past the hashing budget), so it cannot be checked"
        try:
            here = copy.lstat(path)
            if here is not None:
                if here.kind != "file":
                    return f"input {name}: the replay's earlier executions left {here.describe()}"
                found = copy.sha256(path)
                if found != want:
                    return (f"input {name} changed: the replay's earlier executions left sha256 {short(found)}, "
                            f"the record read {short(want)}")
                done.from_replay.append(path)
                return ""
            there = real.lstat(path)
            if there is None:
                return f"input {name} is missing: the workspace no longer holds it (recorded sha256 {short(want)})"
            if there.kind != "file":
                return f"input {name}: {there.describe()} in the workspace now: not followed"
            found = copy.copy_from(real, path, path, expect=want)
        except (Refused, OSError) as exc:
            return f"input {name} could not be restored: {one_line(exc)}"
        if found != want:
            return f"input {name} changed: the workspace's is sha256 {short(found)}, the record read {short(want)}"
        done.from_workspace.append(path)
        return ""

    def close(self) -> None:
        """Remove the copy (rmtree removes symlinks the code left, never what they point to)."""
        shutil.rmtree(self.root, ignore_errors=True)
        if os.path.lexists(self.root):
            self.notes.append(f"the replay's copy at {one_line(self.root)} could not be removed entirely")
