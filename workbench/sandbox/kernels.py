"""Warm sessions, host side: the project's session container and the client of its runner.

The session container (label role=kernel) runs `runner.py --serve` as PID 1 with the same isolation and
limits as the one-off container. It is per project, not per process: it outlives the `workbench exec`
that started it, so `workbench exec --session s1 -c 'x = 42'` and a later `... -c 'print(x)'` in a new
process share `x`. It stops:
  * by itself after `IDLE_SECONDS` without a request (`sandbox.session_idle` when that setting exists),
    or as soon as its socket disappears (the project folder was deleted),
  * on `workbench session stop`, or when the image or limits change (it is then recreated),
and its state is gone with it (the next execution says `state_lost` only when an interpreter died
mid-life; a fresh container simply starts empty).

The runner listens on a unix socket inside the workspace (`.workbench-runner/runner.sock`), so the
host reaches it without a network and without an exec round trip; this needs the engine on this machine
(as the workspace bind mount already does). Code in the one-off container can reach that socket too:
it runs with the same user, limits and workspace, so it gains nothing it did not have.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import events, runtimes
from workbench.errors import EngineUnavailable, UsageError
from workbench.project import Project
from workbench.sandbox import policy, runner, workspace
from workbench.sandbox.diskguard import DiskGuard
from workbench.sandbox.execution import EventSink, LiveExecution
from workbench.sandbox.types import ExecutionResult

if TYPE_CHECKING:
    from workbench.sandbox.sandbox import Sandbox

ROLE_KERNEL = "kernel"
SOCKET_DIR = ".workbench-runner"
IDLE_SECONDS = 1800.0
WARM_LANGUAGES = ("python", "shell", "r")


def socket_path(project: Project) -> Path:
    return project.workspace / SOCKET_DIR / "runner.sock"


def connect(project: Project, timeout: float | None = 5.0) -> socket.socket:
    """Connect to the runner (unix socket paths are short: go through /proc/self/fd for long ones)."""
    path = socket_path(project)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if len(str(path)) < 100:
        sock.connect(str(path))
        return sock
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock.connect(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        os.close(fd)
    return sock


def request(project: Project, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    with connect(project, timeout) as sock:
        runner.send_json(sock, message)
        kind, payload = runner.recv_frame(sock)
        return json.loads(payload)


def _answers(project: Project) -> bool:
    try:
        return bool(request(project, {"op": "ping"}, timeout=2).get("pong"))
    except (OSError, EOFError, ValueError):
        return False


class Kernels:
    """Warm executions for one `Sandbox`."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.project = sandbox.project
        self._lock = threading.Lock()
        self._ready = False

    def spec_digest(self) -> str:
        settings = self.sandbox.settings
        key = json.dumps([self.sandbox.image, policy.limits(settings), self.sandbox.identity.user,
                          hashlib.sha256(Path(runner.__file__).read_bytes()).hexdigest()], sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def ensure(self) -> None:
        """Find this project's running session container, or start one; wait until its runner answers."""
        with self._lock:
            if self._ready:  # a failed connect in WarmRun.start clears this and comes back here
                return
            engine, digest = self.sandbox.engine, self.spec_digest()
            found = engine.list_containers({policy.LABEL_PROJECT: self.project.id, policy.LABEL_ROLE: ROLE_KERNEL})
            keep = None
            for container in found:
                labels = container.get("Labels") or {}
                if keep is None and container.get("State") == "running" and labels.get(policy.LABEL_SPEC) == digest:
                    keep = container
                else:
                    engine.remove(container["Id"])
            if keep is None or not _answers(self.project):
                if keep is not None:
                    engine.remove(keep["Id"])
                self._start(digest)
            self._ready = True

    def _start(self, digest: str) -> None:
        sandbox = self.sandbox
        idle = float(getattr(sandbox.settings.sandbox, "session_idle", IDLE_SECONDS))
        sock = f"{policy.WORKSPACE}/{SOCKET_DIR}/runner.sock"
        (self.project.workspace / SOCKET_DIR).mkdir(exist_ok=True)
        owner = sandbox.workspace_owner()
        if owner is not None:
            os.chown(self.project.workspace / SOCKET_DIR, *owner)
        labels = sandbox.labels(ROLE_KERNEL) | {policy.LABEL_SPEC: digest}
        spec = policy.container_spec(
            image=sandbox.image, settings=sandbox.settings, workspace=self.project.workspace,
            code_dir=sandbox.host_dir, labels=labels, ident=sandbox.identity,
            limits_enforced=sandbox.engine.limits_enforced,
            command=[*policy.prlimit_args(sandbox.settings, sandbox.engine.limits_enforced),
                     "python3", f"{policy.CODE_DIR}/runner.py", "--serve", sock, "--idle", f"{idle:g}"])
        container = sandbox.engine.create_container(spec)
        try:
            sandbox.engine.start(container)
        except BaseException:  # a container created but never started would stay behind ("Created")
            sandbox.engine.remove(container)
            raise
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if _answers(self.project):
                return
            state = sandbox.engine.state(container) or {}
            if not state.get("Running", True):
                break
            time.sleep(0.05)
        sandbox.engine.remove(container)
        raise EngineUnavailable("the warm-session runner did not start in the sandbox")

    def execute(self, runtime: runtimes.Runtime, code: str, *, timeout: float, session: str) -> LiveExecution:
        if runtime.name not in WARM_LANGUAGES:
            raise UsageError(f"{runtime.name} has no warm sessions (choose {', '.join(WARM_LANGUAGES)}, "
                             "or run it without --session)")
        if not session or len(session) > 64 or not session.replace("-", "").replace("_", "").isalnum():
            raise UsageError("a session name is 1-64 letters, digits, - or _")
        sandbox = self.sandbox
        self.ensure()
        execution_id = uuid.uuid4().hex[:16]
        sink = EventSink(sandbox.bus, sandbox.session_id, sandbox.actor, execution_id)
        sink.emit(events.EXEC_STARTED, {"execution_id": execution_id, "language": runtime.name, "code": code,
                                        "session": session, "limits": policy.limits(sandbox.settings) | {
                                            "timeout": timeout, "enforced": sandbox.engine.limits_enforced}})
        sink.start()
        return WarmRun(self, runtime, code, timeout, session, execution_id, sink).start()

    def close(self) -> None:
        """Nothing to stop: the session container outlives this process by design (see module doc)."""


class WarmRun:
    def __init__(self, kernels: Kernels, runtime: runtimes.Runtime, code: str, timeout: float, session: str,
                 execution_id: str, sink: EventSink):
        self.kernels, self.runtime, self.code, self.timeout, self.session = kernels, runtime, code, timeout, session
        self.execution_id = execution_id
        sandbox = kernels.sandbox
        self.live = LiveExecution(execution_id, sink, sandbox.settings.sandbox.output_cap, self._finalize,
                                  self._cancel)
        self.sock: socket.socket | None = None
        self.before: workspace.Snapshot = {}
        self.guard: DiskGuard | None = None

    def start(self) -> LiveExecution:
        sandbox = self.kernels.sandbox
        self.before = workspace.snapshot(sandbox.project.workspace, owner=sandbox.workspace_owner())
        try:
            try:
                self.sock = connect(sandbox.project, timeout=None)
            except OSError:  # the session container stopped (idle, or by hand) since we checked: restart it
                self.kernels._ready = False
                self.kernels.ensure()
                self.sock = connect(sandbox.project, timeout=None)
            runner.send_json(self.sock, {"op": "exec", "session": self.session, "language": self.runtime.name,
                                         "code": self.code, "timeout": self.timeout,
                                         "python": sandbox.python_path()})
        except OSError as exc:
            self.live.finish(None, error=f"the warm-session runner is unreachable: {exc}")
            return self.live
        threading.Thread(target=self._pump, name=f"warm-{self.execution_id}", daemon=True).start()
        self.guard = DiskGuard(sandbox.project.workspace, policy.parse_size(sandbox.settings.sandbox.disk_floor),
                               self._disk_low).start()
        return self.live

    def _pump(self) -> None:
        assert self.sock is not None
        outcome: dict[str, Any] = {}
        try:
            while True:
                kind, payload = runner.recv_frame(self.sock)
                if kind == b"O":
                    self.live.feed("stdout", payload)
                elif kind == b"E":
                    self.live.feed("stderr", payload)
                else:
                    outcome = json.loads(payload)
                    if outcome.get("done"):
                        break
        except (OSError, EOFError, ValueError) as exc:
            outcome = {"exit_code": None, "error": f"lost the warm-session runner: {exc}", "state_lost": True}
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
        self.live.finish(outcome.get("exit_code"), **{k: v for k, v in outcome.items() if k != "exit_code"})

    def _disk_low(self, _free: int) -> None:
        # The fill guard, as for one-off runs. An interrupt first; a cell still writing a moment later is
        # not given the usual grace (the disk is filling): its interpreter restarts at once.
        self._cancel()
        if not self.live.wait(0.3):
            try:
                request(self.kernels.sandbox.project, {"op": "restart", "session": self.session,
                                                       "language": self.runtime.name}, timeout=5)
            except (OSError, ValueError):
                pass

    def _cancel(self) -> None:
        if self.sock is not None:
            try:
                runner.send_json(self.sock, {"op": "interrupt"})
            except OSError:
                pass

    def _finalize(self, live: LiveExecution) -> ExecutionResult:
        sandbox = self.kernels.sandbox
        extra = live.extra
        notes = list(sandbox.notes())
        if extra.get("error"):
            notes.append(extra["error"])
        killed_by = extra.get("killed_by")
        if self.guard is not None:
            self.guard.stop()
            if self.guard.tripped:
                killed_by = "disk"
                notes.append(f"stopped: the disk holding the workspace fell under "
                             f"{sandbox.settings.sandbox.disk_floor} free ([sandbox] disk_floor); "
                             f"free up space, then run again")
        if killed_by == "oom":
            notes.append(f"killed: out of memory (limit {sandbox.settings.sandbox.memory})")
        if extra.get("timed_out"):
            notes.append(f"stopped after the {self.timeout:g} s timeout")
        if extra.get("state_lost"):
            notes.append(f"session {self.session!r} was restarted: its variables are gone")
        elif extra.get("interrupted") or extra.get("timed_out"):
            notes.append("interrupted; the session's state was kept")
        after = workspace.snapshot(sandbox.project.workspace)
        changes = workspace.diff(sandbox.project.workspace, self.before, after)
        return ExecutionResult(
            execution_id=self.execution_id, language=self.runtime.name, code=self.code,
            exit_code=live.exit_code, duration=live.duration, timed_out=bool(extra.get("timed_out")),
            killed_by=killed_by, stdout=live.records["stdout"].summary(),
            stderr=live.records["stderr"].summary(), files=changes, artifacts=workspace.artifacts(changes),
            session=self.session, limits_enforced=sandbox.engine.limits_enforced,
            state_lost=bool(extra.get("state_lost")), notes=tuple(notes))


# --- `workbench session ...` -----------------------------------------------------------------------
def list_sessions(project: Project) -> list[dict[str, Any]]:
    """The warm interpreters alive in the project's session container (none when it is not running)."""
    try:
        return request(project, {"op": "list"}).get("sessions", [])
    except (OSError, EOFError, ValueError):
        return []


def restart_session(project: Project, name: str, language: str | None = None) -> int:
    try:
        return int(request(project, {"op": "restart", "session": name, "language": language}).get("restarted", 0))
    except (OSError, EOFError, ValueError):
        return 0


def stop_sessions(project: Project) -> bool:
    from workbench.sandbox.engine import connect as connect_engine

    engine = connect_engine(project.settings())
    try:
        found = engine.list_containers({policy.LABEL_PROJECT: project.id, policy.LABEL_ROLE: ROLE_KERNEL})
        for container in found:
            engine.remove(container["Id"])
        return bool(found)
    finally:
        engine.close()
