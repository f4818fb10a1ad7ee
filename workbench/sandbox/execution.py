"""One execution: live chunks while it runs, a frozen `ExecutionResult` when it ends, events throughout.

A reader thread pulls output from the engine as it arrives and hands each chunk to two consumers: the
iterator (the CLI or TUI reading live) and the event publisher, which coalesces chunks per stream every
`FLUSH_INTERVAL` so a flood of small writes makes a few `exec.output` events, not thousands. Only bytes
within the output cap are published; the digest covers everything.

The execution lifecycle (`workbench.sandbox.lifecycle`) feeds a `LiveExecution` through `feed()` /
`finish()`, whatever the transport; this module knows nothing about containers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from workbench import events
from workbench.events import EventBus
from workbench.sandbox.streams import StreamRecorder
from workbench.sandbox.types import ExecutionResult, OutputChunk, StreamName

FLUSH_INTERVAL = 0.05  # seconds: the longest a chunk waits before its exec.output event
FLUSH_BYTES = 64 * 1024
_END = object()


class EventSink:
    """Publishes exec.* events for one execution, coalescing output per stream."""

    def __init__(self, bus: EventBus | None, session_id: str, actor: str, execution_id: str):
        self.bus, self.session_id, self.actor, self.execution_id = bus, session_id, actor, execution_id
        self._pending: dict[str, tuple[int, bytearray]] = {}  # stream -> (offset of first byte, bytes)
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, kind: str, payload: events.Payload | dict[str, Any]) -> None:
        if self.bus is not None:
            self.bus.emit(kind, self.session_id, self.actor, payload)

    def start(self) -> None:
        if self.bus is not None:
            self._thread = threading.Thread(target=self._loop, name=f"exec-events-{self.execution_id}",
                                            daemon=True)
            self._thread.start()

    def output(self, stream: str, offset: int, data: bytes) -> None:
        if self.bus is None or not data:
            return
        with self._lock:
            if stream in self._pending and self._order and self._order[-1] == stream:
                self._pending[stream][1].extend(data)
            else:
                self._flush_locked()
                self._pending[stream] = (offset, bytearray(data))
                self._order.append(stream)
            if len(self._pending[stream][1]) >= FLUSH_BYTES:
                self._flush_locked()

    def _flush_locked(self) -> None:
        for stream in self._order:
            offset, data = self._pending.pop(stream)
            self.emit(events.EXEC_OUTPUT, events.ExecOutput(
                execution_id=self.execution_id, stream=stream,
                text=bytes(data).decode("utf-8", errors="backslashreplace"), offset=offset, bytes=len(data)))
        self._order.clear()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()


class LiveExecution:
    """An `Execution`: iterate for chunks; `result()` waits and returns the frozen result."""

    def __init__(self, execution_id: str, sink: EventSink, cap: int,
                 finalize: Callable[[LiveExecution], ExecutionResult], cancel: Callable[[], None]):
        self.execution_id = execution_id
        self.started_at = time.monotonic()
        self.cancelled = False
        self.exit_code: int | None = None
        self.records = {"stdout": StreamRecorder(cap), "stderr": StreamRecorder(cap)}
        self._sink = sink
        self._finalize = finalize
        self._cancel = cancel
        self._queue: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
        self._result: ExecutionResult | None = None
        self._result_lock = threading.Lock()
        self.ended_at: float | None = None

    # --- producer side --------------------------------------------------------------------------
    def feed(self, stream: StreamName, data: bytes) -> None:
        if not data:
            return
        record = self.records[stream]
        offset = record.total
        kept = record.add(data)
        self._sink.output(stream, offset, kept)
        self._queue.put(OutputChunk(stream, data, time.monotonic()))

    def finish(self, exit_code: int | None) -> None:
        self.ended_at = time.monotonic()
        self.exit_code = exit_code
        self._done.set()
        self._queue.put(_END)

    # --- consumer side --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[OutputChunk]:
        while True:
            item = self._queue.get()
            if item is _END:
                self._queue.put(_END)  # a second iterator, or result(), also ends
                return
            yield item

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def duration(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started_at

    def result(self) -> ExecutionResult:
        self._done.wait()
        with self._result_lock:
            if self._result is None:
                self._result = self._finalize(self)
                # a session that injects secrets (workbench.network.redact): none is kept in the result
                redact = getattr(self._sink.bus, "redact_result", None)
                if redact is not None:
                    self._result = redact(self._result)
                self._sink.stop()
                finished = events.typed(events.EXEC_FINISHED, self._result.to_payload())
                self._sink.emit(events.EXEC_FINISHED, finished)
            return self._result

    def cancel(self) -> None:
        if not self._done.is_set():
            self.cancelled = True
            self._cancel()
