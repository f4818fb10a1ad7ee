"""Output accounting: every byte hashed and counted, the first `cap` bytes kept.

The digest covers all output even past the cap, so a reviewer can tell that what was kept is a prefix
of what ran, and how much was dropped.
"""

from __future__ import annotations

import hashlib

from workbench.sandbox.types import StreamSummary


class StreamRecorder:
    def __init__(self, cap: int):
        self.cap = cap
        self.total = 0
        self._hash = hashlib.sha256()
        self._kept = bytearray()

    def add(self, data: bytes) -> bytes:
        """Record `data`; return the part of it that falls within the cap (what we keep and publish)."""
        self._hash.update(data)
        start = self.total
        self.total += len(data)
        room = self.cap - start
        if room <= 0:
            return b""
        kept = data[:room]
        self._kept += kept
        return kept

    def summary(self) -> StreamSummary:
        return StreamSummary(total_bytes=self.total, sha256=self._hash.hexdigest(), kept=bytes(self._kept),
                             truncated=self.total > self.cap)
