"""One thread for every execution's backstop deadline, instead of a thread per execution.

Each execution has a watchdog: past its timeout and the kill grace, if the process has still not ended
(the PID limit may leave `timeout` unable to act), the host kills it. Waiting for that in a thread of its
own costs a thread start on every execution, which on a warm session's millisecond runs is measurable;
so every execution's deadline waits in one heap served by one daemon thread. A deadline that fires runs
its callback in a new thread (it signals the engine, which may be slow), so one overdue execution never
delays another's deadline. An execution that ends cancels its deadline, so the heap holds only live ones.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[list] = []  # [when, order, callback or None when cancelled]
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` in `seconds` unless the returned function is called first."""
        entry = [time.monotonic() + seconds, next(self._order), callback]
        with self._wake:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="exec-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0] is entry:
                self._wake.notify()

        def cancel() -> None:
            with self._wake:
                entry[2] = None

        return cancel

    def pending(self) -> int:
        with self._wake:
            return sum(1 for entry in self._heap if entry[2] is not None)

    def _serve(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                callback = heapq.heappop(self._heap)[2]
            threading.Thread(target=self._call, args=(callback,), name="exec-overdue", daemon=True).start()

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # a failing backstop must not stop the others
            log.exception("an execution's backstop failed")


DEADLINES = Deadlines()
