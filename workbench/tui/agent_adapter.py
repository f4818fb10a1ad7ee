"""Run the agent for the TUI: a thin adapter over `workbench.agent.runner.run_task`.

It does what `workbench run` does (the same `run_task`: budgets and approval policy from `[agent]`,
events on the session's bus under an `agent:` actor, memory in and out) but keeps the model loaded
between tasks, because loading a GGUF takes seconds. Runs on a thread worker only.

The model is never freed while a task is inside it (llama.cpp would crash): `close()` during a run is
deferred until the run returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

OpenLLM = Callable[[Any, Callable[[str], None]], Any]


def _open_configured(settings: Any, on_status: Callable[[str], None]) -> Any:
    from workbench.agent.llm import open_model

    return open_model(settings.model, None, on_status=on_status)


class AgentRunner:
    """Holds the loaded model; `run` is one task from start to `task.finished`."""

    def __init__(self, open_llm: OpenLLM | None = None):
        self._open_llm = open_llm or _open_configured
        self._llm: Any = None
        self._key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._running = 0
        self._close_pending = False

    def model(self, settings: Any, on_status: Callable[[str], None]) -> Any:
        key = (settings.model.provider, settings.model.path, settings.model.endpoint,
               settings.model.endpoint_model, settings.model.context)
        with self._lock:
            if self._llm is None or key != self._key:
                self._free()
                self._llm = self._open_llm(settings, on_status)
                self._key = key
            return self._llm

    def run(self, session: Any, task: str, approve: Callable[[Any], bool], stop: threading.Event,
            on_status: Callable[[str], None] = lambda _: None) -> Any:
        from workbench.agent.runner import run_task

        with self._lock:
            self._running += 1
        try:
            llm = self.model(session.settings, on_status)
            return run_task(session, task, llm, approve=approve, stop=stop)
        finally:
            with self._lock:
                self._running -= 1
                if not self._running and self._close_pending:
                    self._free()

    def close(self) -> None:
        """Free the model now, or, while a task is using it, as soon as that task returns."""
        with self._lock:
            if self._running:
                self._close_pending = True
                return
            self._free()

    def _free(self) -> None:  # with the lock held
        self._close_pending = False
        llm, self._llm, self._key = self._llm, None, None
        if llm is not None:
            llm.close()
