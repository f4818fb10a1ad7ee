"""Stop an execution before it fills the disk that holds the workspace.

RLIMIT_FSIZE (the workspace quota) caps any single file, but code can still write many files. A true
per-workspace quota needs filesystem support (XFS project quotas, a loop-mounted image) that a rootless
engine cannot set up. So while code runs, the host checks the free space of the workspace's filesystem
several times a second and stops the execution when it falls under a floor (`[sandbox] disk_floor`,
default 1 GiB): the host keeps room to work, and the user gets a clear reason instead of a full disk.

The check is statvfs on the workspace folder: one cheap system call, independent of how many files the
workspace holds. Between two checks code can still write (at most about interval x disk speed), which
the floor's size absorbs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

INTERVAL = 0.1  # seconds between checks


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


class DiskGuard:
    """Calls `on_trip(free_bytes)` once, from its own thread, when free space under `path` drops below
    `floor` bytes. `stop()` ends the watch (call it when the execution ends)."""

    def __init__(self, path: Path, floor: int, on_trip: Callable[[int], None], interval: float = INTERVAL):
        self.path, self.floor, self.on_trip, self.interval = Path(path), floor, on_trip, interval
        self.tripped_at: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DiskGuard:
        if self.floor > 0:
            self._thread = threading.Thread(target=self._watch, name="disk-guard", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                free = free_bytes(self.path)
            except OSError:  # the workspace vanished: nothing left to protect here
                return
            if free < self.floor:
                self.tripped_at = free
                self.on_trip(free)
                return

    def stop(self) -> None:
        self._stop.set()

    @property
    def tripped(self) -> bool:
        return self.tripped_at is not None
