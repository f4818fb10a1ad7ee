"""Payloads of an agent run: the task, each model request and reply, approvals, observations, files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.events import contract as C
from workbench.events import kinds as K
from workbench.events.contract import Payload
from workbench.events.declared import declare


@declare
@dataclass(frozen=True, slots=True)
class TaskStarted(Payload):
    """A run began: the task as given, the model, its budgets and what needs approval.
    Older logs named the task `text` or `goal` (legacy, read only)."""

    KIND = K.TASK_STARTED

    task: str = C.text(required=True)
    model: str | None = C.text(None)
    budgets: dict[str, Any] | None = C.mapping(optional=True)
    policy: dict[str, Any] | None = C.mapping(optional=True)
    text: str | None = C.text(None, legacy=True)
    goal: str | None = C.text(None, legacy=True)

    def words(self) -> str:
        return self.task or self.text or self.goal or ""


@declare
@dataclass(frozen=True, slots=True)
class TaskFinished(Payload):
    """A run ended: whether it succeeded, why it stopped (`workbench.agent.loop.Reason`), the answer, and
    the session note it left (`note`, None without memory). Older logs said `outcome`/`status`, `ok` and
    `summary` (legacy, read only)."""

    KIND = K.TASK_FINISHED

    success: bool | None = C.flag()
    reason: str = C.text()
    answer: str = C.text()
    detail: str = C.text()
    steps: int | None = C.integer()
    tokens: int | None = C.integer()
    seconds: float | None = C.number()
    note: str | None = C.text(None)
    outcome: str | None = C.text(None, legacy=True)
    status: str | None = C.text(None, legacy=True)
    ok: bool | None = C.flag(legacy=True)
    summary: str | None = C.text(None, legacy=True)

    def succeeded(self) -> bool | None:
        return self.success if self.success is not None else self.ok


@dataclass(frozen=True, slots=True)
class _Reply(Payload):
    """What the model's reply cost (the loop adds these to `llm.action` and `llm.malformed`)."""

    prompt_tokens: int | None = C.integer()
    evaluated_tokens: int | None = C.integer()
    completion_tokens: int | None = C.integer()
    seconds: float | None = C.number()
    finish_reason: str | None = C.text(None)


@declare
@dataclass(frozen=True, slots=True)
class LlmRequest(Payload):
    KIND = K.LLM_REQUEST

    step: int | None = C.integer()
    messages: int | None = C.integer()
    max_tokens: int | None = C.integer()


@declare
@dataclass(frozen=True, slots=True)
class LlmAction(_Reply):
    """The model chose an action (`action`: `workbench.agent.actions.to_payload`). The first logs held the
    action's name as a string, with `model` and `language` beside it (legacy, read only)."""

    KIND = K.LLM_ACTION

    step: int | None = C.integer()
    thought: str = C.text()
    action: Any = C.anything()
    raw: str = C.text()
    model: str | None = C.text(None, legacy=True)
    language: str | None = C.text(None, legacy=True)

    def action_name(self) -> str:
        if isinstance(self.action, dict):
            return C.coerce_text(self.action.get("action")) or ""
        return C.coerce_text(self.action) or ""


@declare
@dataclass(frozen=True, slots=True)
class LlmMalformed(_Reply):
    """The model's reply was not a valid action (or the user stopped it: `error` says which)."""

    KIND = K.LLM_MALFORMED

    step: int | None = C.integer()
    raw: str = C.text()
    error: str = C.text()


@declare
@dataclass(frozen=True, slots=True)
class AgentApproval(Payload):
    KIND = K.AGENT_APPROVAL

    step: int | None = C.integer()
    action: Any = C.anything()
    approved: bool = C.flag(False)


@declare
@dataclass(frozen=True, slots=True)
class AgentObservation(Payload):
    """What the model is told after an action (`ok` None: neither success nor failure, e.g. a thought).
    A `finish` says whether the answer was `verified` against the executions."""

    KIND = K.AGENT_OBSERVATION

    step: int | None = C.integer()
    action: str = C.text(required=True)
    ok: bool | None = C.flag()
    text: str = C.text()
    verified: bool | None = C.flag(omit=True)


@declare
@dataclass(frozen=True, slots=True)
class FileChanged(Payload):
    """A file a tool wrote (`by`: `agent.write_file`); `replaced` says what it replaced when that was not
    a regular file (a symlink, say)."""

    KIND = K.FILE_CHANGED

    path: str = C.text(required=True)
    change: str = C.text()
    sha256: str | None = C.text(None)
    size: int | None = C.integer()
    by: str | None = C.text(None, omit=True)
    replaced: str | None = C.text(None, omit=True)


@declare
@dataclass(frozen=True, slots=True)
class FileRefused(Payload):
    """A file tool would not touch a path: what it is (`kind`, a symlink's `target`) and why."""

    KIND = K.FILE_REFUSED

    step: int | None = C.integer()
    tool: str = C.text()
    path: str = C.text()
    message: str = C.text()
    kind: str | None = C.text(None, omit=True)
    target: str | None = C.text(None, omit=True)
