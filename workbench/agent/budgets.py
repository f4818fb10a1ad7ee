"""What a run may spend (`Budgets`), which of its actions need a human yes (`Policy`), and what it needs
of memory (`Memory`): the settings side of an agent run, read by `workbench.agent.runner` from the
project's settings and by the loop while it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from workbench.agent import actions as A


@dataclass(frozen=True)
class Budgets:
    """Limits of one run. `reply_tokens` caps each reply so a looping small model cannot run away."""

    max_steps: int = 12
    max_tokens: int = 60_000  # model work: prompt tokens evaluated plus tokens generated
    wall_clock: float = 900.0  # seconds
    reply_tokens: int = 512
    exec_timeout: float = 120.0  # seconds per execution (never more than the wall clock left)


@dataclass(frozen=True)
class Policy:
    """Which actions need a human yes: `ask` for executions and file writes, `ask` for installs."""

    executions: Literal["auto", "ask"] = "auto"
    installs: Literal["auto", "ask"] = "ask"

    def needs_approval(self, action: A.Action) -> bool:
        asks = A.approval_of(action)  # each tool says which setting asks for it (workbench.agent.tools)
        if asks == "installs":
            return self.installs == "ask"
        if asks == "executions":
            return self.executions == "ask"
        return False


class Memory(Protocol):
    """What the loop needs from memory (`workbench.memory.MemoryStore` has it)."""

    def retrieve_for_task(self, task: str, token_budget: int, *, k: int = ...,
                          count_tokens: Callable[[str], int] | None = ...) -> str: ...

    def add(self, text: str, title: str | None = ..., tags: Iterable[str] = ...,
            session: str | None = ...) -> Any: ...

    def search(self, query: str, k: int = ...) -> list[tuple[Any, float]]: ...


def memory_budget(context_length: int) -> int:
    """Tokens for retrieved notes when the settings do not say: an eighth of the context, at most 1,500."""
    return max(0, min(1500, context_length // 8))
