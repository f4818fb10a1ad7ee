"""The agent's steps as a list of cards: thought, action, code (highlighted), result (exit, duration).

Cards are built from events only (live from the bus, or replayed from the audit log), so what the
analyst sees here is what the reviewer reads in the log. Nearly all of it is the sandbox's or the model's
(file names, code, runner replies, package names, answers): every piece is a `Text` made visible by
`workbench.inert`, so markup is never parsed and terminal escapes show as `\\x1b`.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from textual.containers import VerticalScroll
from textual.widgets import Static

from workbench.events import Event
from workbench.inert import one_line, plain, visible

LEXERS = {"python": "python", "r": "r", "shell": "bash", "bash": "bash", "sh": "bash", "sql": "sql",
          "julia": "julia", "javascript": "javascript", "node": "javascript"}
MAX_STEPS = 300
EMPTY = ("No steps yet. Type a task below and press enter: the agent's thoughts, code and results appear "
         "here.\nctrl+r runs code yourself · ctrl+p lists every command · F2–F5 move between panes.")


class StepCard(Static):
    """One step. Classes: -running, -ok, -failed, -user, -task, -note."""

    def __init__(self, title: str, *, thought: str = "", code: str = "", language: str = "",
                 body: str = "", classes: str = "") -> None:
        super().__init__(classes=f"step {classes}".strip())
        self.title = title
        self.thought = thought
        self.code = code
        self.language = language
        self.body = body
        self.result = ""

    def on_mount(self) -> None:
        self.update(self._renderable())

    def set_result(self, result: str, ok: bool) -> None:
        self.result = result
        self.remove_class("-running")
        self.add_class("-ok" if ok else "-failed")
        self.update(self._renderable())

    def _renderable(self) -> RenderableType:
        parts: list[RenderableType] = [plain(self.title, "bold", single_line=True)]
        if self.thought:
            parts.append(plain(self.thought, "italic"))
        if self.code:
            dark = self.app.current_theme.dark if self.is_attached else True
            # Syntax passes control characters through to the terminal: they are shown escaped instead.
            parts.append(Syntax(visible(self.code), LEXERS.get(self.language.lower(), "text"), word_wrap=True,
                                theme="ansi_dark" if dark else "ansi_light", background_color="default"))
        if self.body:
            parts.append(plain(self.body))
        if self.result:
            parts.append(plain(self.result, "bold"))
        return Group(*parts)


def _seconds(value: Any) -> float:
    """A duration from a record; anything else (a forged reply) counts as 0."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class StepsPanel(VerticalScroll):
    """The Steps pane. `add_event` turns each event into a card or updates one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._by_execution: dict[str, StepCard] = {}
        self._pending_code: StepCard | None = None
        self.count = 0
        self.replaying = False
        self._heading = "Steps"

    @property
    def heading(self) -> str:
        """The pane's title as plain text (it may name a schedule); shown without markup or escapes."""
        return self._heading

    @heading.setter
    def heading(self, text: str) -> None:
        self._heading = text
        self.border_title = plain(text, single_line=True)

    def compose(self):
        yield Static(EMPTY, classes="steps-empty", markup=False)

    def clear_steps(self) -> None:
        self._by_execution.clear()
        self._pending_code = None
        self.count = 0
        self.replaying = False
        self.remove_children()
        self.mount(Static(EMPTY, classes="steps-empty", markup=False))

    def _add(self, card: StepCard) -> StepCard:
        self.count += 1
        for hint in self.query(".steps-empty"):
            hint.remove()
        self.mount(card)
        extra = len(self.children) - MAX_STEPS
        if extra > 0:
            for old in list(self.children)[:extra]:
                old.remove()
        self.scroll_end(animate=False)
        return card

    def add_event(self, event: Event) -> None:
        kind, p = event.kind, dict(event.payload)
        who = "you" if event.actor.startswith("user:") else event.actor.split(":", 1)[0]
        if kind == "task.started":
            self._add(StepCard(f"Task · {p.get('task', '')}", classes="-task"))
        elif kind == "llm.action":
            self._llm_action(p)
        elif kind == "exec.started":
            self._exec_started(p, who)
        elif kind == "exec.finished":
            self._exec_finished(p)
        elif kind == "task.finished":
            ok = bool(p.get("success"))
            reason = str(p.get("reason", "")).replace("_", " ")
            answer = p.get("answer") or ""
            self._add(StepCard(f"{'✔ Done' if ok else '✘ Ended'} · {reason}", body=_short(answer),
                               classes="-ok" if ok else "-failed"))
        elif kind == "package.installed":
            what = f"{p.get('name')} {p.get('version')} ({p.get('manager')})" if p.get("name") else _short(p)
            self._add(StepCard(f"Installed · {what}", classes="-ok"))
        elif kind == "install.egress" and (p.get("refused") or p.get("unreachable")):
            lines = [f"refused (not an install source): {', '.join(p['refused'])}"] if p.get("refused") else []
            lines += [f"could not reach {item}" for item in p.get("unreachable") or []]
            self._add(StepCard("Install network", body=_short("\n".join(lines), 600), classes="-failed"))
        elif kind == "error":
            self._add(StepCard(f"Error · {_short(p.get('message') or p)}", classes="-failed"))
        elif kind == "agent.approval":
            approved = bool(p.get("approved"))
            self._add(StepCard("Approved by you" if approved else "Denied by you", classes="-ok" if approved
                               else "-failed"))
        elif kind == "agent.observation" and p.get("action") not in ("run_code", "finish", "think", None):
            self._add(StepCard(f"Observation · {p.get('action')}", body=_short(p.get("text", ""), 600),
                               classes="-ok" if p.get("ok") else "-failed" if p.get("ok") is False else "-note"))
        elif kind == "llm.malformed":
            self._add(StepCard("Model reply was not a valid action", body=_short(p.get("error", "")),
                               classes="-note"))
        elif kind == "file.changed" and p.get("by"):
            self._add(StepCard(f"File {p.get('change', 'changed')} · {p.get('path')}", classes="-note"))

    def _llm_action(self, p: dict[str, Any]) -> None:
        if isinstance(p.get("action"), dict):  # the loop nests the action: {"step", "thought", "action": {...}}
            p = {**p, **p["action"]}
        action = str(p.get("action", "?"))
        thought = str(p.get("thought", ""))
        if action == "run_code":
            card = StepCard(f"Run {p.get('language', '')} code", thought=thought, code=str(p.get("code", "")),
                            language=str(p.get("language", "")), classes="-running")
            self._pending_code = self._add(card)
        elif action == "finish":
            return  # task.finished says it
        elif action == "think":
            self._add(StepCard("Think", thought=thought, classes="-note"))
        else:
            rest = {k: v for k, v in p.items() if k not in ("action", "thought", "step", "raw") and
                    not k.endswith("tokens") and k != "seconds"}
            self._add(StepCard(action.replace("_", " ").capitalize(), thought=thought, body=_short(rest),
                               classes="-note"))

    def _exec_started(self, p: dict[str, Any], who: str) -> None:
        execution_id = str(p.get("execution_id", ""))
        card = self._pending_code
        self._pending_code = None
        if card is None:  # run by the user (or a tool without an llm.action before it)
            card = self._add(StepCard(f"Run {p.get('language', '')} code · {who}", code=str(p.get("code", "")),
                                      language=str(p.get("language", "")), classes="-running -user"))
        self._by_execution[execution_id] = card

    def _exec_finished(self, p: dict[str, Any]) -> None:
        card = self._by_execution.pop(str(p.get("execution_id", "")), None)
        if card is None:
            return
        ok = p.get("exit_code") == 0 and not p.get("timed_out") and not p.get("killed_by")
        text = f"{'✔' if ok else '✘'} exit {one_line(p.get('exit_code'))} · {_seconds(p.get('duration')):.2f} s"
        if p.get("timed_out"):
            text += " · timed out"
        elif p.get("killed_by"):
            text += f" · killed ({one_line(p['killed_by'])})"
        files = [f for f in p.get("files") or [] if isinstance(f, dict)]
        if files:  # one name each on one line: a newline in a file name must not start a line of its own
            text += " · files: " + ", ".join(f"{one_line(f.get('path'))} ({one_line(f.get('change'))})"
                                             for f in files[:6])
        card.set_result(text, ok)
