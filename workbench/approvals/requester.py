"""The requester's side: ask the open TUI of a project and wait, at most a timeout (`workbench.approvals`)."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

from workbench.approvals.wire import (
    DEFAULT_TIMEOUT,
    SOCKET_NAME,
    Decision,
    Request,
    Unsafe,
    folder,
    peer_uid,
    read_line,
)
from workbench.inert import one_line


def ask(root: Path, request: Request, timeout: float = DEFAULT_TIMEOUT) -> Decision:
    """Ask the open TUI of the project at `root`, waiting at most `timeout` seconds. Never raises."""
    started = time.monotonic()

    def done(outcome: str, reason: str, by: str = "") -> Decision:
        return Decision(outcome, by, reason, round(time.monotonic() - started, 3))

    try:
        where = folder(root, create=False)
    except FileNotFoundError:
        return done("no-tui", "no Workbench TUI is open for this project")
    except Unsafe as exc:
        return done("unsafe", f"approvals folder refused: {exc}")
    path = where / SOCKET_NAME
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return done("no-tui", "no Workbench TUI is open for this project")
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return done("unsafe", f"{path} is not a socket a Workbench TUI of yours made (a link or a planted file): "
                              "ignored")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(2.0)
        try:
            # A name already checked above; connecting with O_NOFOLLOW is not possible, so the check repeats
            # on the connection itself: the listener's uid from the kernel.
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return done("no-tui", "no Workbench TUI is open for this project (a closed one left its socket)")
        except OSError as exc:
            return done("no-tui", f"no Workbench TUI answers for this project ({exc.strerror or exc})")
        if peer_uid(sock) != os.getuid():
            return done("unsafe", "the process listening for approvals is not yours: ignored")
        sock.sendall(request.encode())
        line = read_line(sock, 64 * 1024, started + timeout)
        if line is None:
            if time.monotonic() - started >= timeout:
                return done("timeout", f"no answer from the Workbench TUI within {timeout:g} s")
            return done("error", "the Workbench TUI closed before it answered")
        answer = json.loads(line.decode("utf-8"))
        if not isinstance(answer, dict):
            return done("error", "the Workbench TUI's answer is not a JSON object")
        if answer.get("error"):
            return done("error", f"the Workbench TUI refused the request: {one_line(answer['error'])[:300]}")
        if answer.get("id") != request.id or not isinstance(answer.get("approved"), bool):
            return done("error", "the Workbench TUI's answer does not match the request")
        by = one_line(answer.get("by", ""))[:120]
        if answer["approved"]:
            return done("approved", "", by)
        return done("refused", f"{by or 'the user'} said no in the Workbench TUI", by)
    except (OSError, ValueError) as exc:
        return done("error", f"asking the Workbench TUI failed: {one_line(exc)[:300]}")
    finally:
        sock.close()


