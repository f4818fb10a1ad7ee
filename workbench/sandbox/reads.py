"""Files an execution read: inotify on the host sees the opens and closes code makes through the bind mount.

One `Watcher` per workspace per process (`watcher_for`) keeps inotify watches on every folder of the workspace
(Workbench's own top-level trees included, so their reads can be counted) for as long as the process lives:
adding thousands of watches for a venv costs a walk, paid once, not per execution. New folders get a watch
when their IN_CREATE arrives. Watches are added through `/proc/self/fd/N` of a folder opened by
`workbench.confined` (each component with O_NOFOLLOW), so a folder swapped for a symlink never gets the host
watching something outside the workspace. The kernel's reader is watchdog's `InotifyFD` (its ctypes binding
and event thread); what the events mean for an execution is decided here.

An execution `begin`s a `Reads` collector after its workspace snapshot and before its code starts, and `end`s
it once the code is over. Both are ordered with the code's events by a mark: the host opens a file in a private
folder watched by the same inotify instance, and the kernel queues that open after everything that happened
before it, so when the mark's event comes back every earlier event has been seen.

What counts as read: a regular file closed after an open without write access (IN_CLOSE_NOWRITE), or opened
and still open at the end (a warm session's interpreter may hold it) without having been changed. Each is
hashed once per execution, through `Confined` when its close arrives (the content as read, bar a write in the
instant between), never following a symlink (a file replaced by one is recorded as the symlink), never
opening a FIFO (recorded as one), and a file deleted meanwhile is recorded as deleted. Reads inside .venv, .R,
.conda and .workbench are counted per folder, not listed. Past `LISTED` files, or `HASHED_BYTES` hashed, the
rest are counted in a note instead of hashed: a million files read make a summary, not a hang.

What inotify cannot tell: which process opened a file. Host-side reads of the workspace while code runs (a
file preview in the TUI) and reads by two overlapping executions are each recorded in every collector open at
the time. A folder made during the run is watched once its IN_CREATE arrives: a file opened in it in the
instant before that is not seen. Under gVisor the gofer may serve repeated opens from its cache, so some re-reads are not seen. An
exhausted watch limit (fs.inotify.max_user_watches) or instance limit is a note, never a failure.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.observers.inotify_c import CallbackId, InotifyConstants, InotifyEvent, InotifyFD, Mask

from workbench.confined import Confined, Refused
from workbench.sandbox.types import FileRead
from workbench.sandbox.workspace import OWN_TOP_FOLDERS

LISTED = 10_000  # files listed (and hashed) per execution; past it they are counted
HASHED_BYTES = 4 << 30  # bytes hashed per execution; past it files are listed with no hash
MARK_WAIT = 5.0  # seconds to wait for a mark to come back through the queue

_C = InotifyConstants
_MASK = Mask(_C.IN_OPEN | _C.IN_CLOSE_NOWRITE | _C.IN_CLOSE_WRITE | _C.IN_CREATE | _C.IN_MOVED_FROM
             | _C.IN_MOVED_TO | _C.IN_ONLYDIR | _C.IN_EXCL_UNLINK)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MARK_MASK = Mask(_C.IN_OPEN | _C.IN_ONLYDIR)


@dataclass
class Reads:
    """One execution's reads, filled by the watcher's thread between its begin and end marks."""

    folder: Confined
    listed: dict[str, FileRead] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)  # opened, no close seen yet
    written: set[str] = field(default_factory=set)  # closed after a write open: not a read
    own: dict[str, int] = field(default_factory=dict)  # Workbench's own folder -> files read there
    seen_own: set[str] = field(default_factory=set)
    unlisted: int = 0
    hashed: int = 0
    notes: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def opened_file(self, rel: str) -> None:
        if rel not in self.listed:
            self.opened.add(rel)

    def closed(self, rel: str, *, wrote: bool) -> None:
        self.opened.discard(rel)
        if wrote:
            self.written.add(rel)
        else:
            self.read(rel)

    def read(self, rel: str) -> None:
        top = rel.split("/", 1)[0]
        if top in OWN_TOP_FOLDERS and "/" in rel:
            if rel not in self.seen_own and len(self.seen_own) < 10 * LISTED:
                self.seen_own.add(rel)
                self.own[top] = self.own.get(top, 0) + 1
            return
        if rel in self.listed:
            return
        if len(self.listed) >= LISTED:
            self.unlisted += 1
            return
        self.listed[rel] = self.hash(rel)

    def hash(self, rel: str) -> FileRead:
        """What `rel` is now: a regular file with its size and SHA-256, or what it became (never followed)."""
        try:
            entry = self.folder.lstat(rel)
        except (Refused, OSError):  # a folder above it is now a symlink or a file
            return FileRead(rel, None, None, kind="refused")
        if entry is None:
            return FileRead(rel, None, None, kind="deleted")
        if entry.kind != "file":
            return FileRead(rel, None, entry.size if entry.kind == "symlink" else None, kind=entry.kind,
                            target=entry.target)
        if self.hashed + entry.size > HASHED_BYTES:
            return FileRead(rel, None, entry.size)
        self.hashed += entry.size
        try:
            return FileRead(rel, self.folder.sha256(rel), entry.size)
        except Refused:  # swapped for something else since the look
            now = self.folder.lstat(rel)
            return FileRead(rel, None, None, kind=now.kind if now is not None else "deleted",
                            target=now.target if now is not None else None)
        except OSError:  # deleted while it was being hashed
            return FileRead(rel, None, entry.size, kind="deleted")

    def finish(self, changed: set[str]) -> tuple[tuple[FileRead, ...], tuple[tuple[str, int], ...], list[str]]:
        """After the end mark: files still open count as read unless the execution changed them."""
        for rel in sorted(self.opened - self.written - changed):
            self.read(rel)
        notes = list(self.notes)
        if self.unlisted:
            notes.append(f"{self.unlisted} more files were read than the {LISTED} listed: counted, not hashed")
        unhashed = sum(1 for r in self.listed.values() if r.kind == "file" and r.sha256 is None)
        if unhashed:
            notes.append(f"{unhashed} files read were not hashed: past {HASHED_BYTES >> 30} GiB hashed in one "
                         "execution")
        return tuple(self.listed[k] for k in sorted(self.listed)), tuple(sorted(self.own.items())), notes


class Watcher:
    """inotify watches on every folder of one workspace, and the collectors of the executions running in it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.folder = Confined(self.root)
        self.problems: list[str] = []  # watch-limit notes, given to every collector that begins later
        self._paths: dict[int, str] = {}  # watch descriptor -> folder path relative to the workspace
        self._watched: dict[tuple[int, int], int] = {}  # (device, inode) of a watched folder -> its watch
        self._watched_key: dict[int, tuple[int, int]] = {}  # and back
        self._moves: dict[int, str] = {}  # cookie -> the folder moved away
        self._active: list[Reads] = []
        self._marks: deque[tuple[str, Reads]] = deque()
        self._lock = threading.Lock()
        self._private = tempfile.mkdtemp(prefix="workbench-reads-")
        # Two mark files, used in turn: the kernel merges an event identical to the one before it still unread,
        # so two marks in a row on one file could come back as one.
        self._mark_paths = (os.path.join(self._private, "mark0"), os.path.join(self._private, "mark1"))
        self._mark_count = 0
        for path in self._mark_paths:
            Path(path).touch()
        self._fd = InotifyFD()
        self._id = CallbackId(id(self))
        self._mark_wd = self._fd.add_callback(os.fsencode(self._private), _MARK_MASK, self, self._id)
        self._fd.start()
        self._watch_tree("")

    # --- watches ----------------------------------------------------------------------------------
    def _watch_tree(self, rel: str) -> None:
        """Watch the folder at `rel` and every folder below it (by fd: nothing is followed)."""
        if not self._watch(rel):
            return
        try:
            for fd, entry in self.folder.walk_at(rel):
                if entry.kind == "dir":
                    self._watch_at(fd, entry.path)
        except (Refused, OSError):
            pass  # removed or swapped while walking: what is left has no watch, and the walk goes no further

    def _watch(self, rel: str) -> bool:
        fd = os.dup(self.folder.fd)
        try:
            for part in (p for p in rel.split("/") if p):  # one component at a time, never through a symlink
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError:
            os.close(fd)
            return False
        try:
            return self._add(fd, rel)
        finally:
            os.close(fd)

    def _watch_at(self, parent_fd: int, rel: str) -> None:
        try:
            fd = os.open(rel.rsplit("/", 1)[-1], _DIR_FLAGS, dir_fd=parent_fd)
        except OSError:
            return
        try:
            self._add(fd, rel)
        finally:
            os.close(fd)

    def _add(self, dir_fd: int, rel: str) -> bool:
        # A folder is often reached twice (the walk of a new tree and its own IN_CREATE): the kernel would hand
        # back the same watch, and watchdog would warn on stderr that our callback is re-registered. A folder
        # whose watch is alive (not yet IN_IGNORED) only has its path brought up to date.
        try:
            stat = os.fstat(dir_fd)
        except OSError:
            return False
        key = (stat.st_dev, stat.st_ino)
        with self._lock:
            known = self._watched.get(key)
            if known is not None and known in self._paths:
                self._paths[known] = rel
                return True
        try:
            wd = self._fd.add_callback(f"/proc/self/fd/{dir_fd}".encode(), _MASK, self, self._id)
        except OSError as exc:
            if exc.errno == errno.ENOSPC and not self.problems:
                self.problems.append("reads in some folders were not recorded: the inotify watch limit was "
                                     "reached (raise fs.inotify.max_user_watches)")
            return False
        with self._lock:
            self._paths[wd] = rel
            self._watched[key], self._watched_key[wd] = wd, key
        return True

    # --- collectors -------------------------------------------------------------------------------
    def begin(self) -> Reads:
        reads = Reads(self.folder, notes=list(self.problems))
        self._mark("begin", reads)
        return reads

    def end(self, reads: Reads) -> None:
        """Wait until every event before now has reached `reads`, then stop filling it."""
        self._mark("end", reads)
        if not reads.ended.wait(MARK_WAIT):
            with self._lock:
                if reads in self._active:
                    self._active.remove(reads)
            reads.notes.append("the record of files read may be incomplete: inotify's queue fell behind")
            reads.ended.set()

    def _mark(self, what: str, reads: Reads) -> None:
        with self._lock:  # appended and opened under the lock, so the queue's order is the marks' order
            self._marks.append((what, reads))
            self._mark_count += 1
            os.close(os.open(self._mark_paths[self._mark_count % 2], os.O_RDONLY | os.O_CLOEXEC))

    # --- the event thread (watchdog's InotifyFD calls these) --------------------------------------
    def on_event(self, event: InotifyEvent) -> None:
        if event.wd == self._mark_wd:
            if event.name.startswith(b"mark") and event.is_open:
                self._marked()
            return
        with self._lock:
            base = self._paths.get(event.wd)
            active = list(self._active)
        if base is None:
            return
        name = os.fsdecode(event.name)
        rel = f"{base}/{name}" if base and name else (name or base)
        if event.is_directory:
            self._folder_event(event, rel)
            return
        for reads in active:
            if event.is_open:
                reads.opened_file(rel)
            elif event.is_close_nowrite or event.is_close_write:
                reads.closed(rel, wrote=event.is_close_write)

    def _marked(self) -> None:
        with self._lock:
            if not self._marks:
                return
            what, reads = self._marks.popleft()
            if what == "begin":
                self._active.append(reads)
                return
            if reads in self._active:
                self._active.remove(reads)
        reads.ended.set()

    def _folder_event(self, event: InotifyEvent, rel: str) -> None:
        if event.is_create:
            self._watch_tree(rel)
        elif event.is_moved_from:
            self._moves[event.cookie] = rel
        elif event.is_moved_to:
            old = self._moves.pop(event.cookie, None)
            if old is None:
                self._watch_tree(rel)
                return
            with self._lock:
                for wd, path in list(self._paths.items()):
                    if path == old or path.startswith(old + "/"):
                        self._paths[wd] = rel + path[len(old):]

    def on_watch_deleted(self, wd: int) -> None:
        with self._lock:
            self._paths.pop(wd, None)
            key = self._watched_key.pop(wd, None)
            if key is not None and self._watched.get(key) == wd:
                del self._watched[key]

    def on_queue_overflow(self) -> None:
        """Events were lost, marks perhaps among them: every pending mark takes effect now."""
        with self._lock:
            pending = list(self._marks)
            self._marks.clear()
            for what, reads in pending:
                if what == "begin":
                    self._active.append(reads)
                elif reads in self._active:
                    self._active.remove(reads)
            active = list(self._active) + [reads for what, reads in pending if what == "end"]
        for reads in active:
            reads.notes.append("some files read were not recorded: inotify's event queue overflowed")
        for what, reads in pending:
            if what == "end":
                reads.ended.set()

    def close(self) -> None:
        self._fd.close()
        self.folder.close()
        shutil.rmtree(self._private, ignore_errors=True)


_watchers: dict[str, Watcher | str] = {}
_watchers_lock = threading.Lock()


def watcher_for(root: Path) -> tuple[Watcher | None, str | None]:
    """The process's watcher of this workspace (made on first use), or None and one line saying why not."""
    key = os.path.realpath(root)
    with _watchers_lock:
        found = _watchers.get(key)
        if found is None:
            try:
                found = Watcher(Path(key))
            except (OSError, Refused) as exc:
                found = f"files read were not recorded: inotify is not available ({exc})"
            _watchers[key] = found
    return (None, found) if isinstance(found, str) else (found, None)


@atexit.register
def _close_all() -> None:
    with _watchers_lock:
        for found in _watchers.values():
            if isinstance(found, Watcher):
                found.close()
        _watchers.clear()
