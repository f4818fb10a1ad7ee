"""Run the agent's ReAct loop for the TUI (a thin adapter over `workbench.agent.loop`).

The loop emits events on the session's bus; the TUI only passes the task, an `approve(action) -> bool`
callable and a stop `threading.Event`, and waits on a thread worker.
"""

from __future__ import annotations

import threading
from typing import Any

from workbench.errors import NotAvailableYet


def run(session: Any, task: str, approve: Any, stop: threading.Event) -> Any:
    try:
        from workbench.agent import loop
    except ImportError as exc:
        raise NotAvailableYet("the agent loop is not installed in this version of Workbench",
                              "run code directly with ctrl+r meanwhile") from exc
    return loop.run_task(session, task, approve=approve, stop=stop)
