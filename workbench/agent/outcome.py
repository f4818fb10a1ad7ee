"""How an agent run ended, and the steps it took: what the loop returns and the session note reads.

Its own module so that `workbench.agent.session_note` (which turns an outcome into the note left in memory)
and `workbench.agent.loop` (which produces the outcome and writes the note) need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from workbench.agent import actions as A

Reason = Literal["finished", "gave_up", "unverified", "max_steps", "max_tokens", "wall_clock", "stopped",
                 "stuck", "model_error"]


@dataclass(frozen=True)
class StepRecord:
    index: int
    action: A.Action | A.Malformed
    observation: str
    ok: bool | None  # None for actions that are not executions (think, finish, malformed)
    error: str = ""  # for a failed action: its error in one line (the session note quotes it)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: `success` only when the model claimed it *and* the claim was verified."""

    success: bool
    answer: str
    steps: int
    reason: Reason
    tokens: int = 0
    seconds: float = 0.0
    history: tuple[StepRecord, ...] = field(default_factory=tuple)
    detail: str = ""  # why it ended, in words, when the model did not say (stuck, model error)
    note_id: str | None = None  # the session note written to memory at the end, if any


def summarize(outcome: RunOutcome) -> str:
    """One line a person reads at the end of a run."""
    what = {"finished": "finished", "gave_up": "the agent gave up", "unverified": "finished without a verified "
            "result", "max_steps": "step budget used up", "max_tokens": "token budget used up",
            "wall_clock": "time budget used up", "stopped": "stopped by the user",
            "stuck": "stopped: the agent was repeating itself", "model_error": "the model failed"}[outcome.reason]
    why = f" ({outcome.detail})" if outcome.detail else ""
    return f"{what}{why} after {outcome.steps} step(s), {outcome.tokens:,} tokens, {outcome.seconds:.1f} s"


def history_text(history: list[StepRecord] | tuple[StepRecord, ...]) -> str:  # pragma: no cover - a debugging aid
    return "\n".join(f"[{r.index}] {getattr(r.action, 'name', 'malformed')}: {r.observation}" for r in history)
