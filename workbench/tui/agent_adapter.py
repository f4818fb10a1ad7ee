"""Run the agent's ReAct loop for the TUI: a thin adapter over `workbench.agent.loop.AgentLoop`.

It does what `workbench run` does (model from the settings, budgets and approval policy from
`[agent]`, events on the session's bus under an `agent:` actor) but keeps the model loaded between tasks,
because loading a GGUF takes seconds. Runs on a thread worker only.
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

    def model(self, settings: Any, on_status: Callable[[str], None]) -> Any:
        key = (settings.model.provider, settings.model.path, settings.model.endpoint,
               settings.model.endpoint_model, settings.model.context)
        with self._lock:
            if self._llm is None or key != self._key:
                self.close()
                self._llm = self._open_llm(settings, on_status)
                self._key = key
            return self._llm

    def run(self, session: Any, task: str, approve: Callable[[Any], bool], stop: threading.Event,
            on_status: Callable[[str], None] = lambda _: None) -> Any:
        from workbench.agent.loop import AgentLoop, Budgets, Policy

        settings = session.settings
        llm = self.model(settings, on_status)
        agent = settings.agent
        policy = Policy(executions=agent.approval, installs=agent.approve_installs)
        budgets = Budgets(max_steps=agent.max_steps, max_tokens=agent.max_tokens, wall_clock=agent.wall_clock,
                          exec_timeout=settings.sandbox.timeout)
        actor = f"agent:workbench/{getattr(llm, 'name', 'model')}"
        loop = AgentLoop(llm, lambda: session.sandbox,
                         emit=lambda kind, payload: session.emit(kind, payload, actor=actor),
                         workspace=session.project.workspace, budgets=budgets, policy=policy, approve=approve,
                         stop=stop)
        return loop.run(task)

    def close(self) -> None:
        if self._llm is not None:
            try:
                self._llm.close()
            finally:
                self._llm = None
