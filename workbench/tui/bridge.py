"""The bridge from a session's EventBus (called on worker threads) to the UI (messages only).

`exec.output` chunks go into a bounded buffer and one coalescing `OutputPending` message tells the UI
to drain it, so a flood of output costs the event loop one drain per frame, not one message per chunk.
When the UI falls behind, the oldest buffered output is dropped from the *view* (counted and shown as a
marker); the full output is still in the audit log, which is subscribed to the same bus.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from textual.message_pump import MessagePump

from workbench import events
from workbench.events import Event, EventBus
from workbench.tui.messages import BusEvent, OutputPending

# About twice what the output panel shows at once (its max_lines of ordinary lines).
DEFAULT_MAX_PENDING = 512 * 1024


@dataclass(frozen=True, slots=True)
class OutputPiece:
    execution_id: str
    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class OutputBatch:
    pieces: tuple[OutputPiece, ...]
    dropped_chars: int


class EventBridge:
    """Subscribe with `attach(bus)`; the target receives `BusEvent` and `OutputPending` messages."""

    def __init__(self, target: MessagePump, max_pending: int = DEFAULT_MAX_PENDING):
        self._target = target
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: deque[OutputPiece] = deque()
        self._pending_chars = 0
        self._dropped = 0
        self._signalled = False
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> None:
        self.detach()
        self._unsubscribe = bus.subscribe(self)

    def watch(self, bus: EventBus) -> Callable[[], None]:
        """Also relay another bus (a scheduled run's) until the returned function is called; the session
        attached with `attach` stays attached."""
        return bus.subscribe(self)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # --- publisher's thread ------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if event.kind == events.EXEC_OUTPUT:
            self.push(output_piece(event))
        else:
            self._target.post_message(BusEvent(event))

    def push(self, piece: OutputPiece) -> None:
        cut = 0
        if len(piece.text) > self._max_pending:  # one giant chunk: only its tail can be seen anyway
            cut = len(piece.text) - self._max_pending
            piece = OutputPiece(piece.execution_id, piece.stream, piece.text[cut:])
        with self._lock:
            self._dropped += cut
            self._pending.append(piece)
            self._pending_chars += len(piece.text)
            while self._pending_chars > self._max_pending and len(self._pending) > 1:
                old = self._pending.popleft()
                self._pending_chars -= len(old.text)
                self._dropped += len(old.text)
            if self._signalled:
                return
            self._signalled = True
        self._target.post_message(OutputPending())

    # --- UI thread ---------------------------------------------------------------------------------
    def drain(self) -> OutputBatch:
        with self._lock:
            pieces = tuple(self._pending)
            dropped = self._dropped
            self._pending.clear()
            self._pending_chars = 0
            self._dropped = 0
            self._signalled = False
        return OutputBatch(pieces, dropped)


def output_piece(event: Event) -> OutputPiece:
    """An `exec.output` event as a piece for the output pane, decoded through the event contract."""
    chunk = events.ExecOutput.decode(event.payload)
    return OutputPiece(chunk.execution_id, chunk.stream, chunk.text)
