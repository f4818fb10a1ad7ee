"""The workspace: a live tree (watchdog -> coalesced `FilesChanged`), a preview, and image artifacts.

Text files preview as text, CSV as a table; images and other binaries are listed with their size.
Reading a file for the preview happens on a thread worker.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, DirectoryTree, Static
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from workbench.tui.messages import FilesChanged

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".webp"}
PREVIEW_BYTES = 64 * 1024
CSV_ROWS = 200
RELOAD_DELAY = 0.15
HIDDEN = {".venv", ".R", "__pycache__", ".ipynb_checkpoints", ".cache"}


class WorkspaceTree(DirectoryTree):
    """The workspace tree, without the noise of virtualenvs and caches."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if p.name not in HIDDEN and not p.name.startswith(".")]


class _Watcher(FileSystemEventHandler):
    """Runs on watchdog's thread: only posts a coalescing message."""

    def __init__(self, target: FilesPanel):
        self.target = target

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        try:
            parts = Path(str(event.src_path)).relative_to(self.target.workspace).parts
        except ValueError:
            parts = ()
        if any(part in HIDDEN or part.startswith(".") for part in parts):
            return  # a pip install writes thousands of files under .venv: not worth a reload
        self.target.post_message(FilesChanged())


class PreviewReady(Message):
    def __init__(self, path: Path, kind: str, text: str = "", rows: list[list[str]] | None = None):
        super().__init__()
        self.path, self.kind, self.text, self.rows = path, kind, text, rows or []


class ArtifactsFound(Message):
    def __init__(self, text: str):
        super().__init__()
        self.text = text


class FilesPanel(Vertical):
    """The Files pane."""

    def __init__(self, workspace: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.selected: Path | None = None
        self._observer = None
        self._lock = threading.Lock()
        self.reloads = 0
        self._reload_timer = None

    def compose(self):
        tree = WorkspaceTree(self.workspace, id="files-tree")
        tree.show_root = False
        yield tree
        with ContentSwitcher(initial="preview-text", id="files-preview"):
            yield Static("Select a file to preview it.", id="preview-text", markup=False)
            yield DataTable(id="preview-table", zebra_stripes=True, show_cursor=False)
        yield Static("", id="files-artifacts", markup=False)

    def on_mount(self) -> None:
        self.start_watching()
        self.scan_artifacts()

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-watch")
    def start_watching(self) -> None:
        """Start watchdog on the workspace (inotify setup walks the tree, so it runs on a thread)."""
        observer = Observer()
        observer.schedule(_Watcher(self), str(self.workspace), recursive=True)
        observer.daemon = True
        observer.start()
        with self._lock:
            self._observer = observer

    def stop_watching(self) -> None:
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()

    def on_unmount(self) -> None:
        self.stop_watching()

    @on(FilesChanged)
    def _changed(self, message: FilesChanged) -> None:
        message.stop()
        if self._reload_timer is None:  # at most one reload per RELOAD_DELAY, however many changes
            self._reload_timer = self.set_timer(RELOAD_DELAY, self._reload)

    def _reload(self) -> None:
        self._reload_timer = None
        self.reloads += 1
        self.query_one(WorkspaceTree).reload()
        self.scan_artifacts()
        if self.selected is not None:
            self.load_preview(self.selected)

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-artifacts")
    def scan_artifacts(self) -> None:
        found = []
        for folder, dirs, files in _walk(self.workspace):
            dirs[:] = sorted(d for d in dirs if d not in HIDDEN and not d.startswith("."))
            for name in sorted(files):
                path = folder / name
                if path.suffix.lower() in IMAGE_SUFFIXES and len(found) < 12:
                    try:
                        size = path.stat().st_size
                    except OSError:
                        continue
                    found.append(f"{path.relative_to(self.workspace)} ({max(1, size // 1024)} KB)")
        text = ("Artifacts: " + ", ".join(found)) if found else ""
        self.post_message(ArtifactsFound(text))

    @on(ArtifactsFound)
    def _show_artifacts(self, message: ArtifactsFound) -> None:
        message.stop()
        widget = self.query_one("#files-artifacts", Static)
        widget.update(message.text)
        widget.display = bool(message.text)

    @on(DirectoryTree.FileSelected)
    def _selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.selected = event.path
        self.load_preview(event.path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-preview")
    def load_preview(self, path: Path) -> None:
        self.post_message(read_preview(path))

    @on(PreviewReady)
    def _show_preview(self, message: PreviewReady) -> None:
        message.stop()
        switcher = self.query_one(ContentSwitcher)
        if message.kind == "csv" and message.rows:
            table = self.query_one("#preview-table", DataTable)
            table.clear(columns=True)
            header, *rows = message.rows
            table.add_columns(*header)
            width = len(header)
            for row in rows:
                table.add_row(*(row + [""] * width)[:width])
            switcher.current = "preview-table"
        else:
            self.query_one("#preview-text", Static).update(message.text)
            switcher.current = "preview-text"
        self.border_subtitle = str(message.path.relative_to(self.workspace)) \
            if message.path.is_relative_to(self.workspace) else message.path.name


def _walk(root: Path):
    for folder, dirs, files in os.walk(root):
        yield Path(folder), dirs, files


def read_preview(path: Path) -> PreviewReady:
    """What to show for `path` (runs on a thread)."""
    try:
        size = path.stat().st_size
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return PreviewReady(path, "text", f"{path.name}: image artifact, {size:,} bytes "
                                              "(ctrl+o opens it in your $EDITOR or viewer)")
        with path.open("rb") as handle:
            data = handle.read(PREVIEW_BYTES)
    except OSError as exc:
        return PreviewReady(path, "text", f"cannot read {path.name}: {exc.strerror or exc}")
    if b"\0" in data[:4096]:
        return PreviewReady(path, "text", f"{path.name}: binary file, {size:,} bytes")
    text = data.decode("utf-8", errors="replace")
    if path.suffix.lower() in (".csv", ".tsv"):
        try:
            dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
            rows = list(itertools.islice(csv.reader(io.StringIO(text), dialect), CSV_ROWS + 1))
            if rows:
                return PreviewReady(path, "csv", rows=rows)
        except csv.Error:
            pass
    more = f"\n… ({size - PREVIEW_BYTES:,} more bytes)" if size > PREVIEW_BYTES else ""
    return PreviewReady(path, "text", text + more)
