"""Approvals other processes ask for (an MCP client's execute or install): the same dialog as the agent's.

While the TUI is open, the services' approval listener (`workbench.approvals`, on its own threads) hands
each request to `approve_request`, which runs on the listener's thread: it puts the ApprovalScreen up
through a message and waits on a Future, so the event loop never blocks. The requester gives up after its
timeout; then the dialog goes away and a toast says the request was refused. Only one TUI per project
listens (the first one opened); a second one takes over when the first closes.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from workbench.inert import one_line
from workbench.tui.screens.approval import ApprovalScreen


class ApprovalRequests:
    """A mixin for the main screen (which provides `later`, `app`, `project`, `services`, `notify`)."""

    approvals: Any = None

    def start_approvals(self) -> None:
        try:
            self.approvals = self.services.approval_listener(  # type: ignore[attr-defined]
                self.project, self.approve_request, self._approvals_state)  # type: ignore[attr-defined]
            self.approvals.start()  # its own threads: binding and accepting never run on the event loop
        except Exception as exc:  # approvals for other processes are an extra: the TUI works without them
            self.notify(f"Other programs cannot ask this TUI for approvals: {exc}", severity="warning")  # type: ignore[attr-defined]

    def _approvals_state(self, state: str) -> None:
        """On the listener's thread: say once when this TUI does not answer other programs' approvals."""
        if state == "elsewhere":
            self.later(self.notify, "Another Workbench TUI of this project answers approvals for MCP clients; "  # type: ignore[attr-defined]
                       "this one takes over when it closes.", timeout=6)
        elif state.startswith("off"):
            self.later(self.notify, f"MCP clients cannot ask this TUI for approvals ({state[4:].strip()}).",  # type: ignore[attr-defined]
                       severity="warning", timeout=10)

    def stop_approvals(self) -> None:
        """Non-blocking: the listener's threads see it within half a second and remove the socket."""
        if self.approvals is not None:
            self.approvals.closed.set()

    def approve_request(self, request: Any, gone: threading.Event) -> bool | None:
        """On the listener's thread: ask the person; None when the requester left or the TUI is closing."""
        listener = self.approvals
        who = f"The MCP client '{one_line(request.client)[:80]}'" if request.client else "Another program"
        screen = ApprovalScreen(request.action(), who=who)
        decision: concurrent.futures.Future[bool] = concurrent.futures.Future()
        self.later(self.app.push_screen, screen, lambda ok: decision.set_result(bool(ok)))  # type: ignore[attr-defined]
        while not gone.is_set() and not (listener is not None and listener.closed.is_set()):
            try:
                return decision.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                continue
        self.later(self._withdraw, screen, who)  # type: ignore[attr-defined]
        return None

    def _withdraw(self, screen: ApprovalScreen, who: str) -> None:
        if self.app.screen is screen:  # type: ignore[attr-defined]
            screen.dismiss(False)
            self.notify(f"{who} stopped waiting (its timeout): the request was refused.", severity="warning",  # type: ignore[attr-defined]
                        timeout=8)
