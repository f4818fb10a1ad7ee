"""Approvals across processes: another process of the same user (the MCP server now) asks the open TUI.

    listener = Listener(project.root, decide)   # the TUI, while it is open: decide(request, gone) -> bool | None
    listener.start(); ...; listener.close()
    decision = ask(project.root, Request("execute", client="claude", language="python", code=...), timeout=120)

Modules: wire.py (the request, the decision, the private folder, the peer's uid), requester.py (`ask`),
listener.py (`Listener`, the TUI's side).

Where: one private folder per project, `$XDG_RUNTIME_DIR/workbench/appr-<hash of the project path>/` (else
`$TMPDIR` or /tmp `/workbench-<uid>/...`), 0700 and ours; it holds `lock` and the socket `sock` (0600).

Who listens: only one TUI per project, the one holding `lock` (flock). A second TUI of the same project
does not listen; it retries the lock every few seconds and takes over when the first one closes. So the
question is asked in exactly one place, and never twice.

What a requester trusts, checked without following links: the folder is a real folder, ours, 0700; the
socket is a socket and ours (a symlink, a file, a folder open to others is refused and never connected
to); the listener's uid from the kernel (SO_PEERCRED) is ours. A socket left by a TUI that died answers
"connection refused": that is "no TUI open", at once. The listener checks the requester's uid the same
way. The same uid is the boundary: sandboxed code never sees this folder (it is outside the project and
never mounted).

A request cannot approve itself: it is a closed set of typed fields (an unknown field, such as an
`approved` key, gets the request refused), and the answer comes only from `decide`, which the TUI backs
with its approval dialog. Everything in a request is untrusted text: the TUI shows it through
`workbench.inert`. Nothing here imports Textual.

Wire: one JSON line each way (the request; then the answer `{"id", "approved", "by"}` or `{"error"}`).
"""

from __future__ import annotations

from workbench.approvals.listener import Decide, Listener
from workbench.approvals.requester import ask
from workbench.approvals.wire import (
    DEFAULT_TIMEOUT,
    KINDS,
    LOCK_NAME,
    SOCKET_NAME,
    Decision,
    Request,
    Unsafe,
    folder,
    peer_uid,
)

__all__ = ["DEFAULT_TIMEOUT", "KINDS", "LOCK_NAME", "SOCKET_NAME", "Decide", "Decision", "Listener", "Request",
           "Unsafe", "ask", "folder", "peer_uid"]
