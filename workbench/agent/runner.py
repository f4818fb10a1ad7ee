"""One task, from a work session: the one way the CLI, the TUI and the heartbeat run the agent.

    outcome = run_task(session, "Summarise data.csv", llm, approve=ask_the_user)

It builds what every caller used to build by hand: the approval policy and the budgets from the
session's settings (`[agent]`, `[sandbox] timeout`), the sandbox from the session (started on first use),
events on the session's bus under the actor `agent:workbench/<model>`, and the project's memory (notes
relevant to the task go into the prompt; a session note is written at the end). Memory that cannot be
opened (no embedding model, a locked or unreadable index) is an `error` event, and the run goes on
without it.

The caller owns the model: it opens it (loading a GGUF takes seconds, so the TUI keeps one between
tasks) and must not close it until `run_task` has returned: freeing a llama.cpp model while the loop's
thread is inside it crashes the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from workbench import events
from workbench.agent.actions import Vocabulary
from workbench.agent.llm import LLM
from workbench.agent.loop import AgentLoop, Approve, Budgets, Policy, RunOutcome, memory_budget
from workbench.sandbox.types import OutputChunk

OPEN = object()  # `memory=OPEN`: the session's project memory (the default)


def actor_for(llm: Any) -> str:
    return f"agent:workbench/{getattr(llm, 'name', 'model')}"


def policy_from(settings: Any, approve: str | None = None) -> Policy:
    """The approval policy: `approve` ("auto" or "ask", e.g. a command-line flag) wins over `[agent]`.

    `auto` approves installs too; `ask` asks for both; without it, executions follow `[agent] approval`
    and installs `[agent] approve_installs` (which asks by default).
    """
    agent = settings.agent
    if approve in ("auto", "ask"):
        return Policy(executions=approve, installs=approve)
    return Policy(executions=agent.approval, installs=agent.approve_installs)


def budgets_from(settings: Any, *, max_steps: int | None = None, wall_clock: float | None = None) -> Budgets:
    agent = settings.agent
    clock = agent.wall_clock if wall_clock is None else min(agent.wall_clock, wall_clock)
    return Budgets(max_steps=max_steps or agent.max_steps, max_tokens=agent.max_tokens, wall_clock=clock,
                   exec_timeout=settings.sandbox.timeout)


def memory_tokens(settings: Any, llm: Any) -> int:
    configured = getattr(getattr(settings, "memory", None), "context_tokens", 0) or 0
    return configured or memory_budget(int(getattr(llm, "context_length", 0) or 0))


def open_memory(session: Any, actor: str) -> Any:
    """The project's memory publishing on the session's bus as `actor`, or None (and an error event)."""
    try:
        from workbench.memory import MemoryStore

        return MemoryStore.for_project(session.project, bus=session.bus, session_id=session.session_id,
                                       actor=actor, settings=session.settings)
    except Exception as exc:  # memory is a help; the run goes on without it
        message = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        session.emit(events.ERROR, events.Error(where="memory", what="open the project's memory", message=message),
                     actor=actor)
        return None


def run_task(session: Any, task: str, llm: LLM, *, approve: Approve | None,
             stop: threading.Event | None = None, on_chunk: Callable[[OutputChunk], None] | None = None,
             max_steps: int | None = None, wall_clock: float | None = None, policy: Policy | None = None,
             memory: Any = OPEN) -> RunOutcome:
    """Run `task` in `session` with `llm` until it ends; every step is an event on the session's bus.

    `approve(action) -> bool` answers what the policy asks about (None: everything asked is denied).
    `wall_clock` can only shorten `[agent] wall_clock`. `memory`: OPEN (the project's), None (no
    memory), or a store of one's own.
    """
    settings = session.settings
    actor = actor_for(llm)
    store = open_memory(session, actor) if memory is OPEN else memory
    loop = AgentLoop(llm, lambda: session.sandbox,
                     emit=lambda kind, payload: session.emit(kind, payload, actor=actor),
                     workspace=session.project.workspace,
                     budgets=budgets_from(settings, max_steps=max_steps, wall_clock=wall_clock),
                     policy=policy or policy_from(settings), approve=approve, stop=stop, on_chunk=on_chunk,
                     memory=store, memory_tokens=memory_tokens(settings, llm),
                     vocabulary=Vocabulary.of(settings))  # the project's [languages] too
    try:
        return loop.run(task)
    finally:
        if memory is OPEN and store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing an index must not hide the outcome
                pass
