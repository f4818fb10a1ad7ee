"""The agent's file tools: read_file and write_file in the workspace, and the listing hints show.

Code in the sandbox owns every name in the workspace, so each path goes through `workbench.confined`:
walked one component at a time from a directory fd with O_NOFOLLOW, regular files only, every read
bounded. What is refused (a symlink, a FIFO, a device) becomes a one-line observation and a
`file.refused` event, never an open; what is written is a `file.changed` event.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench import events
from workbench.agent import prompts
from workbench.confined import KIND_WORDS, Confined, Entry, Refused
from workbench.inert import one_line

READ_LIMIT = 64 * 1024  # bytes read_file reads at most: a sparse 8 GB file costs 64 KB, and the model sees 6,000 chars
LIST_LIMIT = 200  # names a listing walks to at most, however many the code made


class OutsideWorkspace(Exception):
    """A path the tools refuse before touching anything (outside /workspace, a NUL byte)."""


class WorkspaceFiles:
    """The file tools of one run. `emit(kind, payload)` publishes; `step()` says which step acts; `error`
    holds the one-line reason of the last refusal until the loop takes it for its observation."""

    def __init__(self, workspace: Path | None, emit: Callable[[str, Any], Any], step: Callable[[], int]):
        self.workspace = workspace
        self.emit = emit
        self.step = step
        self.error = ""

    def resolve(self, path: str) -> str:
        """The workspace-relative path the model meant ("" for the workspace itself); never outside it."""
        if self.workspace is None:
            raise OutsideWorkspace("file tools are not available in this session")
        relative = path.strip()
        if relative == "/workspace" or relative.startswith("/workspace/"):
            relative = relative[len("/workspace"):].lstrip("/")
        elif relative.startswith("/"):
            raise OutsideWorkspace(f"{one_line(path)} is outside /workspace")
        if "\0" in relative:
            raise OutsideWorkspace(f"{one_line(path)}: a path may not hold a NUL byte")
        relative = posixpath.normpath(relative) if relative else ""
        if relative == ".":
            relative = ""
        if relative == ".." or relative.startswith(("../", "/")):
            raise OutsideWorkspace(f"{one_line(path)} is outside /workspace")
        return relative

    def confined(self) -> Confined:
        assert self.workspace is not None
        return Confined(self.workspace)

    def refused(self, tool: str, path: str, reason: str, entry: Entry | None = None) -> str:
        """Put a refusal on the record (`file.refused`) and return its observation."""
        self.error = one_line(reason)
        self.emit(events.FILE_REFUSED, events.FileRefused(
            step=self.step(), tool=tool, path=one_line(path), message=self.error,
            kind=entry.kind if entry is not None else None,
            target=one_line(entry.target) if entry is not None and entry.target is not None else None))
        return prompts.refused_observation(tool, reason)

    def walk(self, under: str = "") -> tuple[list[str], int]:
        """Names below `under` for the model, breadth first (shallow names first, each folder sorted), so
        the first names the model reads are the top of the tree: folders as `name/`, symlinks as `name ->
        target` (never entered), special files with their kind. Hidden entries (the venv, the R library)
        are left out and not entered. Returns the names and, when it stopped early, the cap it hit."""
        found: list[str] = []
        with self.confined() as folder:
            queue = [under]
            while queue:
                entries = folder.listdir(queue.pop(0))
                for entry in entries:
                    name = entry.path.rsplit("/", 1)[-1]
                    if name.startswith("."):
                        continue
                    shown = one_line(entry.path)
                    if entry.kind == "dir":
                        found.append(shown + "/")
                        queue.append(entry.path)
                    elif entry.kind == "symlink":
                        found.append(f"{shown} -> {one_line(entry.target or '?')}")
                    elif entry.kind == "file":
                        found.append(shown)
                    else:
                        found.append(f"{shown} ({KIND_WORDS.get(entry.kind, entry.kind)})")
                    if len(found) >= LIST_LIMIT:
                        return found, LIST_LIMIT
        return found, 0

    def names(self) -> list[str]:
        """The workspace's names for hints (a folder swapped for a symlink meanwhile lists as empty)."""
        if self.workspace is None:
            return []
        try:
            return self.walk()[0]
        except (Refused, OSError):
            return []

    def listing(self, under: str) -> str:
        paths, capped = self.walk(under)
        where = f"/workspace/{under}" if under else "/workspace"
        return prompts.listing(paths, where=where, capped=capped)

    def read(self, path: str) -> tuple[str, bool]:
        tool = f"read_file {one_line(path)}"
        try:
            relative = self.resolve(path)
        except OutsideWorkspace as exc:
            return f"{tool}: {exc}", False
        try:
            with self.confined() as folder:
                entry = folder.lstat(relative)
                if entry is None:
                    return f"{tool}: no such file; {self.listing('')}", False
                if entry.kind == "dir":
                    return self.listing(relative), True
                if entry.kind != "file":  # said without opening it: a FIFO would hang, a device never ends
                    verb = "followed" if entry.kind == "symlink" else "opened"
                    return self.refused("read_file", relative, f"{entry.describe()}: not {verb}", entry), False
                read = folder.read(relative, READ_LIMIT)
        except Refused as exc:  # a symlink above it, or the file swapped between the look and the open
            return self.refused("read_file", relative, str(exc)), False
        except FileNotFoundError:
            return f"{tool}: no such file; {self.listing('')}", False
        except OSError as exc:
            return f"{tool}: {exc.strerror or exc}", False
        text = read.data.decode("utf-8", errors="replace")
        return prompts.file_observation(path, text, read.size, read_limit=READ_LIMIT if read.truncated else None), True

    def write(self, path: str, content: str) -> tuple[str, bool]:
        tool = f"write_file {one_line(path)}"
        try:
            relative = self.resolve(path)
        except OutsideWorkspace as exc:
            return f"{tool}: {exc}", False
        if not relative:
            return f"{tool}: that is the workspace folder itself; name a file in it", False
        data = content.encode("utf-8")
        try:
            with self.confined() as folder:
                before = folder.lstat(relative)
                # A temporary file created here with O_EXCL, then renamed over the name: a planted
                # `.NAME.wb-tmp` symlink is never written through, and a symlink at the name is replaced.
                folder.write(relative, data)
        except Refused as exc:
            return self.refused("write_file", relative, str(exc)), False
        except OSError as exc:
            return f"{tool}: {exc.strerror or exc}", False
        replaced = before.describe() if before is not None and before.kind != "file" else ""
        self.emit(events.FILE_CHANGED, events.FileChanged(
            path=one_line(relative), change="modified" if before else "created",
            sha256=hashlib.sha256(data).hexdigest(), size=len(data), by="agent.write_file",
            replaced=one_line(replaced) if replaced else None))
        return prompts.written_observation(relative, len(data), replaced), True
