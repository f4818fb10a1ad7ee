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

from workbench import events
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


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class StepsPanel(VerticalScroll):
    """The Steps pane. `add_event` turns each event into a card or updates one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._by_execution: dict[str, StepCard] = {}
        self._net_tallies: dict[str, dict[str, Any]] = {}  # execution id -> its Network line's counts
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
        self._net_tallies.clear()
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
        """Turn one event into a card (or a card's result), decoding its payload through the contract."""
        p = event.decoded()
        who = "you" if event.actor.startswith("user:") else event.actor.split(":", 1)[0]
        match p:
            case events.TaskStarted():
                self._add(StepCard(f"Task · {p.words()}", classes="-task"))
            case events.LlmAction():
                self._llm_action(p)
            case events.ExecStarted():
                self._exec_started(p, who)
            case events.ExecFinished():
                self._exec_finished(p)
            case events.TaskFinished():
                ok = bool(p.succeeded())
                reason = (p.reason or p.outcome or p.status or "").replace("_", " ")
                self._add(StepCard(f"{'✔ Done' if ok else '✘ Ended'} · {reason}", body=_short(p.answer or p.summary
                                                                                               or ""),
                                   classes="-ok" if ok else "-failed"))
            case events.PackageInstalled():
                what = f"{p.name} {p.version} ({p.manager})" if p.name else _short(dict(event.payload))
                self._add(StepCard(f"Installed · {what}", classes="-ok"))
            case events.InstallEgress() if p.refused or p.unreachable:
                lines = [f"refused (not an install source): {', '.join(map(str, p.refused))}"] if p.refused else []
                lines += [f"could not reach {item}" for item in p.unreachable]
                self._add(StepCard("Install network", body=_short("\n".join(lines), 600), classes="-failed"))
            case events.NetConnection():
                self._net_connection(p)
            case events.NetRequest():
                self._net_request(p)
            case events.SecretLeak():  # the output shown was redacted already: say which secret and where
                where = f" in {one_line(p.stream)}" if p.stream else ""
                self._add(StepCard(f"Secret leak · {one_line(p.secret)} found{where} and redacted",
                                   classes="-failed"))
            case events.Error():
                self._add(StepCard(f"Error · {_short(p.message or dict(event.payload))}", classes="-failed"))
            case events.AgentApproval():
                self._add(StepCard("Approved by you" if p.approved else "Denied by you",
                                   classes="-ok" if p.approved else "-failed"))
            case events.ApprovalDecided():  # another program's request, answered in a TUI (or not at all)
                asked = f"{p.what.replace('_', ' ')} for {p.requester or 'another program'}"
                title = f"Approved by {p.by}" if p.approved else (f"Refused by {p.by}" if p.by else "Refused")
                self._add(StepCard(f"{title} · {asked}", body=_short(p.reason or ""),
                                   classes="-ok" if p.approved else "-failed"))
            case events.AgentObservation() if p.action and p.action not in ("run_code", "finish", "think"):
                self._add(StepCard(f"Observation · {p.action}", body=_short(p.text, 600),
                                   classes="-ok" if p.ok else "-failed" if p.ok is False else "-note"))
            case events.LlmMalformed():
                self._add(StepCard("Model reply was not a valid action", body=_short(p.error), classes="-note"))
            case events.FileChanged() if p.by:
                self._add(StepCard(f"File {p.change or 'changed'} · {p.path}", classes="-note"))

    def _llm_action(self, p: events.LlmAction) -> None:
        # The loop nests the action ({"action": "run_code", "code": ...}); the first logs held its name only.
        detail = dict(p.action) if isinstance(p.action, dict) else {"action": p.action_name() or "?",
                                                                     "language": p.language or ""}
        action = str(detail.get("action", "?"))
        thought = str(detail.get("thought", p.thought))
        if action == "run_code":
            card = StepCard(f"Run {detail.get('language', '')} code", thought=thought,
                            code=str(detail.get("code", "")), language=str(detail.get("language", "")),
                            classes="-running")
            self._pending_code = self._add(card)
        elif action == "finish":
            return  # task.finished says it
        elif action == "think":
            self._add(StepCard("Think", thought=thought, classes="-note"))
        else:
            rest = {k: v for k, v in detail.items() if k not in ("action", "thought")}
            self._add(StepCard(action.replace("_", " ").capitalize(), thought=thought, body=_short(rest),
                               classes="-note"))

    def _net_connection(self, p: events.NetConnection) -> None:
        """A database connection code made (its Network line, under the execution it was part of);
        a refused one is highlighted with the reason."""
        who = f" as {one_line(p.role)}" if p.role else ""
        if p.refused:
            self._add(StepCard(f"Network · database {one_line(p.database)} refused", body=_short(p.refused),
                               classes="-failed"))
            return
        self._add(StepCard(f"Network · database {one_line(p.database)}{who} · {p.duration or 0.0:.2f} s · "
                           f"{p.bytes_up or 0} B up, {p.bytes_down or 0} B down", classes="-note"))

    def _net_request(self, p: events.NetRequest) -> None:
        """HTTP requests through the policy proxy: one Network line per execution that counts the allowed
        ones (a loop of 200 GETs must not push every other step out), and a highlighted line for each
        refused one with its reason."""
        where = f"{one_line(p.method or '?')} {one_line(p.destination)}{one_line(p.path or '')}"
        if p.refused:
            self._add(StepCard(f"Network · {where} refused", body=_short(p.refused), classes="-failed"))
            return
        key = p.execution_id or ""
        tally = self._net_tallies.get(key)
        if tally is None or not tally["card"].is_attached:
            tally = {"card": self._add(StepCard("Network", classes="-note")), "count": 0, "up": 0, "down": 0,
                     "last": []}
            self._net_tallies[key] = tally
        tally["count"] += 1
        tally["up"] += p.bytes_up or 0
        tally["down"] += p.bytes_down or 0
        injected = f" · credential {one_line(p.credential)}" if p.credential else ""
        tally["last"] = [*tally["last"][-4:], f"{where} · {p.status if p.status is not None else '?'}{injected}"]
        card: StepCard = tally["card"]
        card.title = (f"Network · {tally['count']} HTTP request{'s' if tally['count'] != 1 else ''} · "
                      f"{tally['up']} B up, {tally['down']} B down")
        card.body = "\n".join(tally["last"])
        if card.is_attached:
            card.update(card._renderable())

    def _exec_started(self, p: events.ExecStarted, who: str) -> None:
        card = self._pending_code
        self._pending_code = None
        if card is None:  # run by the user (or a tool without an llm.action before it)
            card = self._add(StepCard(f"Run {p.language} code · {who}", code=p.code, language=p.language,
                                      classes="-running -user"))
        self._by_execution[p.execution_id] = card

    def _exec_finished(self, p: events.ExecFinished) -> None:
        card = self._by_execution.pop(p.execution_id, None)
        if card is None:
            return
        ok = p.exit_code == 0 and not p.timed_out and not p.killed_by
        text = f"{'✔' if ok else '✘'} exit {one_line(p.exit_code)} · {p.duration or 0.0:.2f} s"
        if p.timed_out:
            text += " · timed out"
        elif p.killed_by:
            text += f" · killed ({one_line(p.killed_by)})"
        files = [f for f in p.files if isinstance(f, dict)]
        if files:  # one name each on one line: a newline in a file name must not start a line of its own
            text += " · files: " + ", ".join(f"{one_line(f.get('path'))} ({one_line(f.get('change'))})"
                                             for f in files[:6])
        read = [f for f in p.files_read if isinstance(f, dict)]
        if read:
            text += " · read: " + ", ".join(one_line(f.get("path")) for f in read[:6]) + (
                f" (+{len(read) - 6})" if len(read) > 6 else "")
        card.set_result(text, ok)
