"""Approval of network destinations: with `[agent] approval = "ask"`, the first request code makes to each
destination in a session waits for a person's yes (the TUI's dialog, the CLI's prompt; with no terminal the
answer is no), and the answer holds for the rest of the session. `--approve auto` lets through what the
policy allows without asking.

`DestinationGate` is what the policy proxy calls (`PolicyProxy.gate`) after a request matched a rule and
before anything is sent: "" to go on, else the refusal's one-line reason. The question it asks is a plain
dict, `{"action": "reach_the_network", "destination": ..., "rule": ...}`, which both askers show as is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from workbench.network.rules import HttpRule

ACTION = "reach_the_network"


class DestinationGate:
    def __init__(self, approve: Callable[[Any], bool]):
        self.approve = approve
        self.decided: dict[str, bool] = {}
        self.lock = threading.Lock()  # one question at a time: two first requests to a place ask once

    def question(self, destination: str, rule: HttpRule) -> dict[str, str]:
        return {"action": ACTION, "destination": destination, "rule": rule.describe(),
                "thought": f"code asks to reach {destination} (allowed by the rule {rule.url}); the answer "
                           "holds for the rest of this session"}

    def __call__(self, destination: str, rule: HttpRule) -> str:
        with self.lock:
            if destination not in self.decided:
                try:
                    self.decided[destination] = bool(self.approve(self.question(destination, rule)))
                except Exception:  # an asker that broke is a no: nothing leaves unapproved
                    self.decided[destination] = False
            allowed = self.decided[destination]
        return "" if allowed else f"requests to {destination} were not approved in this session"


def gate_session(sandbox: Any, approve: Callable[[Any], bool] | None) -> None:
    """Make `sandbox`'s policy proxy (when it has one) ask `approve` for each new destination."""
    access = getattr(sandbox, "http", None)
    proxy = getattr(access, "proxy", None)
    if proxy is not None:
        proxy.gate = DestinationGate(approve or (lambda question: False))
