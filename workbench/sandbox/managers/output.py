"""An install's output as kept: its first and last bytes, whatever it prints.

A build log can run to gigabytes; what a person needs is how it started and how it ended (the error, the
version listing), so the middle is counted and dropped as it streams.
"""

from __future__ import annotations

OUTPUT_CAP = 256 * 1024  # bytes of an install's output kept at its start, and again at its end
LINE_CAP = 64 * 1024  # a longer run of output without a newline is passed to `progress` in pieces


class KeptOutput:
    """The first and last `cap` bytes of everything `add`ed; memory stays about 3 * cap."""

    def __init__(self, cap: int = OUTPUT_CAP):
        self.cap = cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.cap:  # trim now and then, not on every chunk
                del self.tail[: len(self.tail) - self.cap]

    def text(self) -> str:
        tail = self.tail[-self.cap:]
        skipped = self.total - len(self.head) - len(tail)
        middle = f"\n[... {skipped:,} bytes of output not kept ...]\n".encode() if skipped else b""
        return (bytes(self.head) + middle + bytes(tail)).decode("utf-8", errors="replace")


class LineSplitter:
    """Bytes as they arrive, handed to `progress` a line at a time (a very long line in LINE_CAP pieces)."""

    def __init__(self, progress):
        self.progress = progress
        self.pending = b""

    def add(self, data: bytes) -> None:
        if self.progress is None:
            return
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        if len(self.pending) > LINE_CAP:  # no newline for a long while: show it in pieces
            lines.append(self.pending)
            self.pending = b""
        for line in lines:
            self.progress(line.decode("utf-8", errors="replace"))
