"""The workspace: a live tree (watchdog -> coalesced `FilesChanged`), a preview, and image artifacts.

Text files preview as text, CSV as a table; images and other binaries are listed with their size.
Reading a file for the preview happens on a thread worker.

Sandboxed code owns every name and byte here, so the panel reads only through `workbench.confined`: the
tree lists folders by fd and never enters a symlink (a symlink is shown as one, with its target), the
preview opens regular files only and reads at most `PREVIEW_BYTES`, and everything shown (names, text,
CSV cells and headers) is a Rich `Text` made visible by `workbench.inert`, so no markup or terminal escape
in it is ever interpreted.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, DirectoryTree, Static
from textual.widgets.directory_tree import DirEntry
from textual.widgets.tree import TreeNode
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from workbench.confined import Confined, Entry, Refused
from workbench.inert import one_line, plain
from workbench.tui.messages import FilesChanged

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".webp"}
PREVIEW_BYTES = 64 * 1024
CSV_ROWS = 200
RELOAD_DELAY = 0.15
ARTIFACTS_SHOWN = 12
HIDDEN = {".venv", ".R", "__pycache__", ".ipynb_checkpoints", ".cache"}
# What the tree shows in place of the file icon for entries that are not regular files or folders.
SPECIAL_ICONS = {"symlink": "🔗 ", "fifo": "⏸ ", "socket": "⏸ ", "device": "⏸ ", "other": "⏸ "}


def hidden(name: str) -> bool:
    return name in HIDDEN or name.startswith(".")


def relative(workspace: Path, path: Path) -> str | None:
    """`path` relative to the workspace ("/"-separated), or None when it is not below it."""
    try:
        return PurePosixPath(Path(path).relative_to(workspace)).as_posix()
    except ValueError:
        return None


def look(workspace: Path, path: Path) -> Entry | str:
    """What `path` is, as `lstat` sees it (never followed), or a one-line reason it cannot be looked at."""
    rel = relative(workspace, path)
    if rel is None:
        return f"{one_line(path)} is outside the workspace"
    try:
        with Confined(workspace) as folder:
            entry = folder.lstat("" if rel == "." else rel)  # "": the workspace itself (a folder)
    except Refused as exc:
        return exc.message
    except OSError as exc:
        return f"cannot look at {one_line(rel)}: {exc.strerror or exc}"
    return entry if entry is not None else f"{one_line(rel)} is no longer there"


@dataclass
class WorkspaceEntry(DirEntry):
    """A tree node's entry, with what `lstat` found (a symlink stays a symlink)."""

    kind: str = "file"
    target: str | None = None


def entry_label(entry: Entry) -> Text:
    """A tree label: the name made visible; a symlink with its target, a special file with its kind."""
    name = entry.path.rsplit("/", 1)[-1]
    if entry.kind == "symlink":
        return Text.assemble(one_line(name), (f" → {one_line(entry.target or '?')}", "italic"))
    if entry.kind in ("file", "dir"):
        return plain(name, single_line=True)
    return Text.assemble(one_line(name), (f" ({entry.kind})", "italic"))


class WorkspaceTree(DirectoryTree):
    """The workspace tree, without the noise of virtualenvs and caches.

    Folders are listed through `Confined` (by fd, one component at a time), never through `Path.iterdir`
    and `resolve()` as `DirectoryTree` does: a symlinked folder is a leaf showing its target, and a folder
    swapped for a symlink after it was listed is refused when opened, so the tree never lists a host folder.
    """

    def __init__(self, workspace: Path, **kwargs) -> None:
        self.workspace = Path(workspace)
        super().__init__(self.workspace, **kwargs)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not hidden(p.name)]

    def _safe_is_dir(self, path: Path) -> bool:  # DirectoryTree's follows symlinks (path.is_dir())
        entry = look(self.workspace, path)
        return isinstance(entry, Entry) and entry.kind == "dir"

    @work(thread=True, exit_on_error=False)
    def _load_directory(self, node: TreeNode[DirEntry]) -> list[Entry]:
        assert node.data is not None
        rel = relative(self.workspace, node.data.path)
        if rel is None:
            return []
        try:
            with Confined(self.workspace) as folder:
                entries = folder.listdir("" if rel == "." else rel)
        except (Refused, OSError):
            return []  # swapped for a symlink or removed since it was shown: nothing to list
        shown = [e for e in entries if not hidden(e.path.rsplit("/", 1)[-1])]
        return sorted(shown, key=lambda e: (e.kind != "dir", e.path.rsplit("/", 1)[-1].lower()))

    def _populate_node(self, node: TreeNode[DirEntry], content: Iterable[Entry]) -> None:
        node.remove_children()
        for entry in content:
            node.add(entry_label(entry), data=WorkspaceEntry(self.workspace / entry.path, kind=entry.kind,
                                                             target=entry.target),
                     allow_expand=entry.kind == "dir")
        node.expand()

    def render_label(self, node: TreeNode[DirEntry], base_style: Style, style: Style) -> Text:
        text = super().render_label(node, base_style, style)
        data = node.data
        if self.is_mounted and isinstance(data, WorkspaceEntry) and data.kind in SPECIAL_ICONS:
            text = Text.assemble((SPECIAL_ICONS[data.kind], base_style), text[len(self.ICON_FILE):])
        return text


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
        if any(hidden(part) for part in parts):
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
        observer.schedule(_Watcher(self), str(self.workspace), recursive=True, follow_symlink=False)
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
        self.post_message(ArtifactsFound(find_artifacts(self.workspace)))

    @on(ArtifactsFound)
    def _show_artifacts(self, message: ArtifactsFound) -> None:
        message.stop()
        widget = self.query_one("#files-artifacts", Static)
        widget.update(plain(message.text))
        widget.display = bool(message.text)

    @on(DirectoryTree.FileSelected)
    def _selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.selected = event.path
        self.load_preview(event.path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="files-preview")
    def load_preview(self, path: Path) -> None:
        self.post_message(read_preview(self.workspace, path))

    def refuse_to_edit(self, path: Path) -> str | None:
        """Why `path` may not be opened in $EDITOR (one line), or None for a regular file in the workspace.
        A symlink or special file is never handed to an editor: it would follow it as the host user."""
        entry = look(self.workspace, path)
        if isinstance(entry, str):
            return f"{entry}: not opened in $EDITOR"
        if entry.kind != "file":
            return f"{entry.describe()}: not opened in $EDITOR"
        return None

    @on(PreviewReady)
    def _show_preview(self, message: PreviewReady) -> None:
        message.stop()
        switcher = self.query_one(ContentSwitcher)
        if message.kind == "csv" and message.rows:
            table = self.query_one("#preview-table", DataTable)
            table.clear(columns=True)
            header, *rows = message.rows
            # Cells and headers are the file's text: Text objects, so DataTable parses no markup in them
            # (a cell `[@click=app.quit]` would run an action, `[/x]` would raise).
            table.add_columns(*(plain(cell, single_line=True) for cell in header))
            width = len(header)
            for row in rows:
                table.add_row(*(plain(cell, single_line=True) for cell in (row + [""] * width)[:width]))
            switcher.current = "preview-table"
        else:
            self.query_one("#preview-text", Static).update(plain(message.text))
            switcher.current = "preview-text"
        rel = relative(self.workspace, message.path)
        self.border_subtitle = plain(rel if rel is not None else message.path.name, single_line=True)


def find_artifacts(workspace: Path) -> str:
    """"Artifacts: a.png (12 KB), ..." for the first images in the workspace, found by the confined walk
    (symlinks and special files are never images here; hidden folders are not entered)."""
    found = []
    try:
        with Confined(workspace) as folder:
            for entry in folder.walk(skip=lambda e: hidden(e.path.rsplit("/", 1)[-1])):
                name = entry.path.rsplit("/", 1)[-1]
                if (entry.kind == "file" and not hidden(name) and len(found) < ARTIFACTS_SHOWN
                        and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES):
                    found.append(f"{one_line(entry.path)} ({max(1, entry.size // 1024)} KB)")
    except (Refused, OSError):
        return ""
    return ("Artifacts: " + ", ".join(found)) if found else ""


def read_preview(workspace: Path, path: Path) -> PreviewReady:
    """What to show for `path` (runs on a thread): at most PREVIEW_BYTES of a regular file, never a
    symlink's target ("x is a symlink to /etc/shadow: not followed"), never a FIFO or device."""
    name = one_line(path.name)
    entry = look(workspace, path)
    if isinstance(entry, str):
        return PreviewReady(path, "text", entry)
    if entry.kind != "file":
        return PreviewReady(path, "text", f"{entry.describe()}: not {'followed' if entry.kind == 'symlink' else 'opened'}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return PreviewReady(path, "text", f"{name}: image artifact, {entry.size:,} bytes "
                                          "(ctrl+o opens it in your $EDITOR or viewer)")
    try:
        with Confined(workspace) as folder:
            read = folder.read(entry.path, PREVIEW_BYTES)
    except Refused as exc:  # swapped for something else since the look
        return PreviewReady(path, "text", exc.message)
    except OSError as exc:
        return PreviewReady(path, "text", f"cannot read {name}: {exc.strerror or exc}")
    data = read.data
    if b"\0" in data[:4096]:
        return PreviewReady(path, "text", f"{name}: binary file, {read.size:,} bytes")
    text = data.decode("utf-8", errors="replace")
    if path.suffix.lower() in (".csv", ".tsv"):
        try:
            dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
            rows = list(itertools.islice(csv.reader(io.StringIO(text), dialect), CSV_ROWS + 1))
            if rows:
                return PreviewReady(path, "csv", rows=rows)
        except csv.Error:
            pass
    more = ""
    if read.truncated:
        more = f"\n… (preview shows the first {PREVIEW_BYTES:,} of {max(read.size, PREVIEW_BYTES + 1):,} bytes)"
    return PreviewReady(path, "text", text + more)
