"""The ReAct loop: objective -> action -> execution -> observation -> next action, until done.

It only *emits* events (the audit log and the UIs consume them) and takes its two human-facing parts
as callables: `approve(action) -> bool` (the CLI asks at the prompt, the TUI in a dialog) and `stop`, a
`threading.Event` any thread may set. It adds no waiting of its own between model and sandbox.

Self-correction, in the order it helps small models:
1. a failed execution comes back with its exit code and the tail of stderr;
2. deterministic hints for common failures (`repair`);
3. the same failing action repeated is called out, and a third time ends the run ("stuck") rather than
   burning the budget (agents stuck in loops are a known complaint, e.g. OpenHands #5480);
4. a `finish` claiming success is checked against the executions: the last one must have succeeded
   and numbers in the answer must appear in some output; otherwise the model is told and tries again.

Memory (optional, `memory=`: a `workbench.memory.MemoryStore` or anything with its `add`, `search` and
`retrieve_for_task`): before the first step the notes most relevant to the task go into the task message
within a token budget; the model can `save_note` and `search_memory`; at the end of every run a session
note (task, outcome, what worked, what failed) is written, derived from the run's history, not asked of
the model. Memory is a help, never a reason to fail: any error there is an `error` event and the run
goes on.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench import events
from workbench.agent import actions as A
from workbench.agent import prompts
from workbench.agent.budgets import Budgets, Memory, Policy, memory_budget
from workbench.agent.file_tools import WorkspaceFiles
from workbench.agent.llm import LLM, LLMError, Message
from workbench.agent.outcome import Reason, RunOutcome, StepRecord
from workbench.agent.repair import error_line, hints_for
from workbench.agent.session_note import compose_session_note
from workbench.sandbox.types import ExecutionResult, OutputChunk, SandboxAPI

Emit = Callable[[str, Any], Any]  # (kind, payload dataclass): a session's emit, or a bus's bound to a session
Approve = Callable[[A.Action], bool]


# Stuck detection: the same failing action this many times ends the run; one fewer earns a warning.
STUCK_REPEATS = 3
MAX_MALFORMED_IN_A_ROW = 3
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class AgentLoop:
    def __init__(self, llm: LLM, sandbox: SandboxAPI | Callable[[], SandboxAPI], *, emit: Emit,
                 workspace: Path | None = None, budgets: Budgets | None = None, policy: Policy | None = None,
                 approve: Approve | None = None, stop: threading.Event | None = None,
                 on_chunk: Callable[[OutputChunk], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, memory: Memory | None = None,
                 memory_tokens: int | None = None, vocabulary: A.Vocabulary | None = None):
        self.llm = llm
        self.vocabulary = vocabulary or A.Vocabulary.of()  # the tools, languages and managers the model may name
        self._sandbox_source = sandbox
        self._sandbox: SandboxAPI | None = None if callable(sandbox) and not hasattr(sandbox, "execute") \
            else sandbox  # type: ignore[assignment]
        self.emit = emit
        self.workspace = workspace
        self.budgets = budgets or Budgets()
        self.policy = policy or Policy()
        self.approve = approve
        self.stop = stop or threading.Event()
        self.on_chunk = on_chunk
        self.clock = clock
        self.memory = memory
        self.memory_tokens = memory_tokens
        self._step = 0  # the step being acted on, for the events the tools emit
        self._error = ""
        self.files = WorkspaceFiles(workspace, emit, lambda: self._step)

    # --- the run ---------------------------------------------------------------------------------------
    def run(self, task: str) -> RunOutcome:
        self._started = self.clock()
        self._tokens = 0
        self._history: list[StepRecord] = []
        self._failures: dict[str, int] = {}
        self._last_signature: str | None = None
        self._repeats = 0
        self._malformed_in_a_row = 0
        self._executions: list[ExecutionResult] = []
        self._last_effect_ok: bool | None = None
        self._verify_rejections = 0
        self._error = ""  # the one-line error of the action being observed, set by the tool that failed
        self._step = 0
        self.emit(events.TASK_STARTED, events.TaskStarted(
            task=task, model=getattr(self.llm, "name", "?"),
            budgets={"max_steps": self.budgets.max_steps, "max_tokens": self.budgets.max_tokens,
                     "wall_clock": self.budgets.wall_clock, "reply_tokens": self.budgets.reply_tokens},
            policy={"executions": self.policy.executions, "installs": self.policy.installs}))
        notes = self._recall(task)
        self._messages: list[Message] = [{"role": "system", "content": prompts.system_prompt(self.vocabulary)},
                                         {"role": "user", "content": prompts.task_message(task, notes)}]
        outcome = self._run_steps()
        note_id = self._remember_session(task, outcome)
        if note_id is not None:
            outcome = replace(outcome, note_id=note_id)
        self.emit(events.TASK_FINISHED, events.TaskFinished(
            success=outcome.success, reason=outcome.reason, answer=outcome.answer, detail=outcome.detail,
            steps=outcome.steps, tokens=outcome.tokens, seconds=round(outcome.seconds, 3), note=note_id))
        return outcome

    # --- memory: recall before the first step, a session note after the last ------------------------------
    def _memory_failed(self, what: str, exc: BaseException) -> None:
        message = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        self.emit(events.ERROR, events.Error(where="memory", what=what, message=message))

    def _recall(self, task: str) -> str:
        """Notes relevant to the task, within the budget; "" when there are none or memory failed."""
        if self.memory is None:
            return ""
        budget = self.memory_tokens if self.memory_tokens else memory_budget(self.llm.context_length)
        try:
            return self.memory.retrieve_for_task(task, budget, count_tokens=self._count_text) or ""
        except Exception as exc:  # no embedding model, a locked index, ...: run without notes
            self._memory_failed("retrieve notes for the task", exc)
            return ""

    def _count_text(self, text: str) -> int:
        return max(1, self.llm.count_tokens([{"role": "user", "content": text}]) - 4)

    def _remember_session(self, task: str, outcome: RunOutcome) -> str | None:
        if self.memory is None:
            return None
        title, text, tags = compose_session_note(task, outcome)
        try:
            note = self.memory.add(text, title=title, tags=tags)
        except Exception as exc:
            self._memory_failed("write the session note", exc)
            return None
        roll_up = getattr(self.memory, "roll_up_sessions", None)
        if roll_up is not None:
            try:
                roll_up()
            except Exception as exc:  # the note is written; folding old ones can wait for the next run
                self._memory_failed("roll up older session notes", exc)
        return getattr(note, "id", None)

    def _end(self, reason: Reason, answer: str = "", success: bool = False, detail: str = "") -> RunOutcome:
        return RunOutcome(success=success, answer=answer, steps=len(self._history), reason=reason,
                          tokens=self._tokens, seconds=self.clock() - self._started,
                          history=tuple(self._history), detail=detail)

    def _budget_exhausted(self) -> Reason | None:
        if self.stop.is_set():
            return "stopped"
        if len(self._history) >= self.budgets.max_steps:
            return "max_steps"
        if self._tokens >= self.budgets.max_tokens:
            return "max_tokens"
        if self.clock() - self._started >= self.budgets.wall_clock:
            return "wall_clock"
        return None

    def _run_steps(self) -> RunOutcome:
        while True:
            reason = self._budget_exhausted()
            if reason is not None:
                return self._end(reason)
            step = len(self._history) + 1
            self._fit_context()
            self.emit(events.LLM_REQUEST, events.LlmRequest(step=step, messages=len(self._messages),
                                                            max_tokens=self.budgets.reply_tokens))
            try:
                reply = self.llm.complete(self._messages, max_tokens=self.budgets.reply_tokens,
                                          grammar=self.vocabulary.grammar, stop=self.stop)
            except Exception as exc:  # a model failure ends the run with a reason, never a traceback
                message = exc.one_line() if isinstance(exc, LLMError) else f"{type(exc).__name__}: {exc}"
                self.emit(events.ERROR, events.Error(step=step, where="llm", message=message))
                return self._end("model_error", detail=message)
            self._tokens += reply.tokens_used
            usage = {"prompt_tokens": reply.prompt_tokens, "evaluated_tokens": reply.evaluated_tokens,
                     "completion_tokens": reply.completion_tokens, "seconds": round(reply.seconds, 4),
                     "finish_reason": reply.finish_reason}
            if reply.finish_reason == "cancelled":
                self.emit(events.LLM_MALFORMED, events.LlmMalformed(step=step, raw=reply.text,
                                                                    error="stopped by the user", **usage))
                return self._end("stopped")
            action = A.parse(reply.text, self.vocabulary)
            self._messages.append({"role": "assistant", "content": reply.text.strip()})
            if isinstance(action, A.Malformed):
                error = action.error
                if reply.finish_reason == "length":
                    error += f" (the reply hit the {self.budgets.reply_tokens}-token limit: be shorter)"
                self.emit(events.LLM_MALFORMED, events.LlmMalformed(step=step, raw=reply.text, error=error, **usage))
                self._malformed_in_a_row += 1
                self._observe(step, action, f"Your reply was not a valid action: {error}. Reply with exactly "
                              "one JSON object as described.", ok=None)
                if self._malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW:
                    return self._end("stuck", detail=f"{self._malformed_in_a_row} malformed replies in a row")
                continue
            self._malformed_in_a_row = 0
            self.emit(events.LLM_ACTION, events.LlmAction(step=step, thought=action.thought,
                                                          action=A.to_payload(action), raw=reply.text, **usage))
            ended = self._act(step, action)
            if ended is not None:
                return ended

    # --- one action ------------------------------------------------------------------------------------
    def _act(self, step: int, action: A.Action) -> RunOutcome | None:
        self._step = step
        signature = A.signature(action)
        self._repeats = self._repeats + 1 if signature == self._last_signature else 1
        self._last_signature = signature
        if isinstance(action, A.Finish):
            return self._finish(step, action)
        if self.policy.needs_approval(action):
            approved = bool(self.approve(action)) if self.approve is not None else False
            self.emit(events.AGENT_APPROVAL, events.AgentApproval(step=step, action=A.to_payload(action),
                                                                  approved=approved))
            if not approved:
                self._error = "not approved by the user"
                return self._after(step, action, signature, "The user did not approve this action. Choose "
                                   "another way, or finish with success false and say what you needed.", False)
        if isinstance(action, A.Think):
            return self._after(step, action, signature, "Noted. Now act: run code, or finish.", None)
        try:
            if isinstance(action, A.RunCode):
                text, ok = self._run_code(action)
            elif isinstance(action, A.Install):
                text, ok = self._install(action)
            elif isinstance(action, A.ReadFile):
                text, ok = self._file_tool(self.files.read, action.path)
            elif isinstance(action, A.SaveNote):
                text, ok = self._save_note(action)
            elif isinstance(action, A.SearchMemory):
                text, ok = self._search_memory(action.query)
            elif isinstance(action, A.ToolCall):  # a plug-in's tool: it carries itself out
                text, ok = A.run_tool(action, A.ToolContext(self.sandbox, self.workspace, self.emit, step),
                                      self.vocabulary)
            else:
                text, ok = self._file_tool(self.files.write, action.path, action.content)
        except Exception as exc:  # the sandbox failed, not the code: tell the model and the log
            message = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
            self.emit(events.ERROR, events.Error(step=step, where=action.name, message=message))
            text, ok = f"{action.name} could not be carried out: {message}", False
            self._error = message
        if A.is_effect(action):
            self._last_effect_ok = ok
        return self._after(step, action, signature, text, ok)

    def _after(self, step: int, action: A.Action, signature: str, text: str, ok: bool | None) -> RunOutcome | None:
        if ok is False:
            self._failures[signature] = self._failures.get(signature, 0) + 1
        failures = self._failures.get(signature, 0) if ok is False else 0
        stuck = failures >= STUCK_REPEATS or self._repeats >= STUCK_REPEATS
        if not stuck and (failures == STUCK_REPEATS - 1 or self._repeats == STUCK_REPEATS - 1):
            text += ("\nwarning: you already did exactly this and it did not help. Do something different "
                     "(change the code, inspect the data, or finish).")
        self._observe(step, action, text, ok)
        if stuck:
            return self._end("stuck", detail=f"the same {action.name} action was repeated "
                             f"{max(failures, self._repeats)} times without progress")
        return None

    def _observe(self, step: int, action: A.Action | A.Malformed, text: str, ok: bool | None,
                 verified: bool | None = None) -> None:
        error, self._error = self._error, ""
        if ok is False and not error:
            error = text.strip().splitlines()[0] if text.strip() else "failed"
        self._history.append(StepRecord(step, action, text, ok, error[:300]))
        self._messages.append({"role": "user", "content": prompts.observation_message(step, text)})
        name = action.name if not isinstance(action, A.Malformed) else "malformed"
        self.emit(events.AGENT_OBSERVATION, events.AgentObservation(step=step, action=name, ok=ok, text=text,
                                                                    verified=verified))

    # --- finishing ---------------------------------------------------------------------------------------
    def _finish(self, step: int, action: A.Finish) -> RunOutcome | None:
        if not action.success:
            self._observe(step, action, "finished: the agent gave up", None)
            return self._end("gave_up", action.answer)
        problem = self._verify(action.answer)
        if problem is None:
            self._observe(step, action, "finished: verified against the executions", None, verified=True)
            return self._end("finished", action.answer, success=True)
        self._verify_rejections += 1
        if self._verify_rejections > 1:
            self._observe(step, action, f"finished without verification: {problem}", None, verified=False)
            return self._end("unverified", action.answer)
        self._observe(step, action, f"Not finished yet: {problem}. Run code that prints the result, then finish "
                      "with that result (or finish with success false).", None, {"verified": False})
        return None

    def _verify(self, answer: str) -> str | None:
        """Why the success claim is not supported by what ran, or None when it is."""
        if self._last_effect_ok is None:
            return "nothing has been run yet, so the result is not checked"
        if self._last_effect_ok is False:
            return "the last action failed"
        numbers = set(_NUMBER.findall(answer))
        if numbers and self._executions:
            printed = "\n".join(r.stdout.text() for r in self._executions if r.ok)
            seen = set(_NUMBER.findall(printed))
            if not numbers & seen:
                return f"the number(s) {', '.join(sorted(numbers)[:5])} in the answer appear in no output"
        return None

    # --- the tools ---------------------------------------------------------------------------------------
    def sandbox(self) -> SandboxAPI:
        if self._sandbox is None:
            self._sandbox = self._sandbox_source()  # type: ignore[operator]
            if self.policy.executions == "ask":  # each new network destination asks too, the same way
                from workbench.network.approval import gate_session

                gate_session(self._sandbox, self.approve)
        return self._sandbox

    def _run_code(self, action: A.RunCode) -> tuple[str, bool]:
        remaining = self.budgets.wall_clock - (self.clock() - self._started)
        timeout = max(1.0, min(self.budgets.exec_timeout, remaining))
        execution = self.sandbox().execute(action.language, action.code, timeout=timeout)
        done = threading.Event()
        watcher = threading.Thread(target=self._cancel_on_stop, args=(execution, done), daemon=True)
        watcher.start()
        try:
            for chunk in execution:
                if self.on_chunk is not None:
                    self.on_chunk(chunk)
            result = execution.result()
        finally:
            done.set()
        self._executions.append(result)
        if not result.ok:
            self._error = error_line(result)
        return prompts.execution_observation(result, hints_for(result, self._list_workspace)), result.ok

    def _cancel_on_stop(self, execution: Any, done: threading.Event) -> None:
        while not done.wait(0.1):
            if self.stop.is_set():
                execution.cancel()
                return

    def _install(self, action: A.Install) -> tuple[str, bool]:
        result = self.sandbox().install(action.manager, list(action.packages))  # type: ignore[arg-type]
        if not result.ok:
            tail = [line.strip() for line in result.output.splitlines() if line.strip()]
            self._error = f"exit code {result.exit_code}" + (f": {tail[-1]}" if tail else "")
        return prompts.install_observation(result), result.ok

    def _save_note(self, action: A.SaveNote) -> tuple[str, bool]:
        if self.memory is None:
            return "save_note: memory is not available in this session", False
        note = self.memory.add(action.text, title=action.title.strip() or None, tags=("agent",))
        return prompts.note_saved_observation(note.id, note.title), True

    def _search_memory(self, query: str) -> tuple[str, bool]:
        if self.memory is None:
            return "search_memory: memory is not available in this session", False
        hits = self.memory.search(query, k=5)
        return prompts.memory_search_observation(query, [(n.id, n.title, n.body) for n, _ in hits]), True

    # The file tools live in `file_tools`; what they refuse becomes this step's error line.
    def _file_tool(self, tool: Callable[[str], tuple[str, bool]], *args: str) -> tuple[str, bool]:
        text, ok = tool(*args)
        if self.files.error:
            self._error, self.files.error = self.files.error, ""
        return text, ok

    def _list_workspace(self) -> list[str]:
        return self.files.names()

    # --- the context window ----------------------------------------------------------------------------
    def _fit_context(self) -> None:
        """Drop the oldest steps when the prompt would not fit; keep the system prompt and the task.

        Half the old steps go at once, so the new prefix stays stable (and cached) for several steps.
        Steps go in assistant/user pairs so roles keep alternating, which strict chat templates require.
        """
        limit = self.llm.context_length - self.budgets.reply_tokens - 64
        while len(self._messages) > 4 and self.llm.count_tokens(self._messages) > limit:
            body = self._messages[2:]
            cut = max(2, (len(body) // 4) * 2)
            if cut >= len(body):
                cut = len(body) - 2
            if cut <= 0:
                break
            task = self._messages[1]["content"]
            if OMITTED not in task:
                task += "\n" + OMITTED
            self._messages = [self._messages[0], {"role": "user", "content": task}, *body[cut:]]


OMITTED = "(Earlier steps were omitted to fit the context window.)"
