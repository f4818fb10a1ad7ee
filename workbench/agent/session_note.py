"""The note the agent leaves in memory at the end of every run: task, outcome, what worked, what failed.

Derived from the run's history, deterministically, never by asking the model: a small model's summary of
its own run is where mistakes hide, and the next session should read what actually happened. Failed
actions are quoted with their error line; what worked is the actions that succeeded (code in a line or
two, packages installed, files written); the answer is the model's last word.
"""

from __future__ import annotations

from workbench.agent import actions as A
from workbench.agent.outcome import RunOutcome

TAGS = ("session", "agent")
MAX_ITEMS = 8  # of each list: a note is read by the next session's prompt, so it stays short
CODE_CHARS = 160

OUTCOME_WORDS = {
    "finished": "succeeded (verified against an execution)", "gave_up": "the agent gave up",
    "unverified": "finished, but the result could not be verified", "max_steps": "ran out of steps",
    "max_tokens": "ran out of tokens", "wall_clock": "ran out of time", "stopped": "stopped by the user",
    "stuck": "stopped: the agent was repeating itself", "model_error": "the model failed",
}


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _what(action: A.Action) -> str:
    """An action in a few words, as a person would list it."""
    if isinstance(action, A.RunCode):
        return f"{action.language}: `{_one_line(action.code.replace(chr(10), '; '), CODE_CHARS)}`"
    if isinstance(action, A.Install):
        return f"install ({action.manager}) {' '.join(action.packages)}"
    if isinstance(action, A.ReadFile | A.WriteFile):
        return f"{action.name} {action.path}"
    if isinstance(action, A.SaveNote):
        return f"save_note {_one_line(action.title or action.text, 60)}"
    if isinstance(action, A.SearchMemory):
        return f"search_memory {_one_line(action.query, 60)!r}"
    return action.name


def _listed(items: list[str]) -> list[str]:
    unique = list(dict.fromkeys(items))
    shown = [f"- {item}" for item in unique[-MAX_ITEMS:]]
    if len(unique) > MAX_ITEMS:
        shown.insert(0, f"- ({len(unique) - MAX_ITEMS} earlier ones left out)")
    return shown


def compose_session_note(task: str, outcome: RunOutcome) -> tuple[str, str, tuple[str, ...]]:
    """(title, Markdown body, tags) of the session note for `outcome`."""
    verdict = "succeeded" if outcome.success else "failed"
    title = _one_line(f"Agent session {verdict}: {task}", 110)
    worked: list[str] = []
    failed: list[str] = []
    malformed = 0
    for record in outcome.history:
        if isinstance(record.action, A.Malformed):
            malformed += 1
            continue
        if isinstance(record.action, A.Think | A.Finish):
            continue
        if record.ok is True:
            worked.append(_what(record.action))
        elif record.ok is False:
            failed.append(f"{_what(record.action)} -> {_one_line(record.error or 'failed', 200)}")
    if malformed:
        failed.append(f"{malformed} repl{'y' if malformed == 1 else 'ies'} from the model were not valid actions")
    outcome_line = OUTCOME_WORDS.get(outcome.reason, outcome.reason)
    if outcome.detail:
        outcome_line += f" ({_one_line(outcome.detail, 200)})"
    lines = [f"Task: {_one_line(task, 500)}", "",
             f"Outcome: {outcome_line}; {outcome.steps} step(s), {outcome.seconds:.0f} s."]
    if outcome.answer.strip():
        lines += ["", f"Answer: {_one_line(outcome.answer, 600)}"]
    lines += ["", "What worked:", *(_listed(worked) or ["- nothing ran successfully"])]
    lines += ["", "What failed:", *(_listed(failed) or ["- nothing"])]
    return title, "\n".join(lines), (*TAGS, "success" if outcome.success else "failure")
