"""The task input: one line for the agent, with history (up/down) like a shell."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

from workbench.inert import one_line


class TaskInput(Input):
    """An Input whose up/down keys walk earlier tasks; submitting adds to the history."""

    BINDINGS = [
        Binding("up", "history(-1)", "Previous task", show=False),
        Binding("down", "history(1)", "Next task", show=False),
    ]

    def __init__(self, *, history: list[str] | None = None, limit: int = 200, **kwargs) -> None:
        kwargs.setdefault("placeholder", "Ask the agent… (enter to run, ↑/↓ history, ctrl+p commands)")
        super().__init__(**kwargs)
        self.history: list[str] = list(history or [])
        self.limit = limit
        self._cursor = len(self.history)
        self._draft = ""

    def remember(self, task: str) -> None:
        task = task.strip()
        if not task:
            return
        if task in self.history:
            self.history.remove(task)
        self.history.append(task)
        del self.history[:-self.limit]
        self._cursor = len(self.history)
        self._draft = ""

    def seed(self, tasks: list[str]) -> None:
        """Earlier tasks (from the audit log) go before anything typed in this run. A log may come with a
        project someone sent: its tasks are recalled on one line with escapes visible, never raw."""
        typed = self.history
        self.history = []
        for task in [*(one_line(t) for t in tasks), *typed]:
            self.remember(task)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._cursor == len(self.history):
            self._draft = self.value
        self._cursor = max(0, min(len(self.history), self._cursor + step))
        self.value = self._draft if self._cursor == len(self.history) else self.history[self._cursor]
        self.cursor_position = len(self.value)
