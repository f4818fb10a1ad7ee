"""Warm sessions, host side: the project's session container, and the runner's clients.

The session container (label role=kernel) runs `runner.py --serve` as PID 1 with the same isolation and
limits as the one-off container. It is per project, not per process: it outlives the `workbench exec`
that started it, so `workbench exec --session s1 -c 'x = 42'` and a later `... -c 'print(x)'` in a new
process share `x`. It stops:
  * by itself after `IDLE_SECONDS` without a request (`sandbox.session_idle` when that setting exists),
    or as soon as its socket disappears (the project folder was deleted),
  * on `workbench session stop`, or when the image, the limits or the runner's files change (it is then
    recreated),
  * when its runner misbehaves or someone else answers in its place: it is removed, the execution ends
    with a one-line error, and the next one starts a fresh container,
and its state is gone with it (the next execution says `state_lost` only when an interpreter died
mid-life; a fresh container simply starts empty).

Who may answer for the runner, and how the host checks it: `workbench.sandbox.runner_client`. A warm
execution itself is the common lifecycle (`workbench.sandbox.lifecycle`) over `workbench.sandbox.warm`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from typing import Any

from workbench import languages
from workbench.errors import EngineUnavailable, UsageError
from workbench.project import Project
from workbench.sandbox import container as container_code
from workbench.sandbox import policy
from workbench.sandbox.container import protocol
from workbench.sandbox.execution import LiveExecution
from workbench.sandbox.lifecycle import Execution, Request, SandboxHost
from workbench.sandbox.runner_client import (
    RUNNER_MOUNT,
    SOCKET_NAME,
    RunnerIdentity,
    RunnerMisbehaved,
    call,
    connect,
    host_key_path,
    identify,
    parse_outcome,
    prepare_runner_dir,
    process_start,
    runner_dir,
    under_gvisor,
    write_private,
)
from workbench.sandbox.spec import Mount
from workbench.sandbox.warm import WarmTransport

# The warm-session API, with the runner client's names callers have always found here.
__all__ = ["IDLE_SECONDS", "ROLE_KERNEL", "Kernels", "RunnerIdentity", "RunnerMisbehaved",
           "connect", "list_sessions", "parse_outcome", "prepare_runner_dir", "process_start", "restart_session",
           "runner_dir", "stop_sessions", "under_gvisor"]

ROLE_KERNEL = "kernel"
PROTOCOL = 4  # part of the container's spec digest: a container speaking an older protocol is replaced
IDLE_SECONDS = 1800.0


class Kernels:
    """Warm executions for one `Sandbox`."""

    reply_slack = 30.0  # seconds beyond a cell's timeout (and the runner's grace) the host waits for its end
    runner_script = "runner.py"  # in the code folder (/opt/workbench); tests swap in a misbehaving one

    def __init__(self, sandbox: SandboxHost):
        self.sandbox = sandbox
        self.project = sandbox.project
        self.lock = threading.RLock()
        self._runner: RunnerIdentity | None = None
        self._incidents: list[str] = []  # why a container was replaced, for the next execution's notes

    def spec_digest(self) -> str:
        settings = self.sandbox.settings
        key = json.dumps([self.sandbox.image, policy.limits(settings), self.sandbox.identity.user, PROTOCOL,
                          self.runner_script, container_code.digest(),
                          getattr(self.sandbox, "databases", None) is not None,  # the database mount
                          getattr(self.sandbox, "http", None) is not None],  # the HTTP proxy and its relay
                         sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def ensure(self) -> RunnerIdentity:
        """This project's running session container's runner, checked to answer as itself; else a new one."""
        with self.lock:
            if self._runner is None:
                self._runner = self._find_or_start()
            return self._runner

    def _find_or_start(self) -> RunnerIdentity:
        engine, digest = self.sandbox.engine, self.spec_digest()
        found = engine.list_containers({policy.LABEL_PROJECT: self.project.id, policy.LABEL_ROLE: ROLE_KERNEL})
        keep = None
        for container in found:
            if keep is None and container.state == "running" and container.labels.get(policy.LABEL_SPEC) == digest:
                keep = container
            else:
                engine.remove(container.id)
        if keep is not None:
            try:
                identity = identify(engine, keep.id, self.project, under_gvisor(self.sandbox.settings))
                problem = self._ping(identity)
            except OSError:
                problem = ""
            if problem is None:
                return identity
            if problem:
                self._incidents.append(f"{problem}: the session container was removed and a fresh one started "
                                       f"(every session's variables are gone)")
            engine.remove(keep.id)
        return self._start(digest)

    def _ping(self, identity: RunnerIdentity, timeout: float = 2.0) -> str | None:
        """None when the runner answers a ping as itself; "" when nobody answers; else what went wrong."""
        try:
            reply = call(self.project, identity, {"op": "ping"}, timeout=timeout)
        except RunnerMisbehaved as exc:
            return str(exc)
        except (OSError, EOFError):
            return ""
        return None if reply.get("pong") is True else "the warm-session runner answered a ping with no pong"

    def _start(self, digest: str) -> RunnerIdentity:
        sandbox = self.sandbox
        idle = float(getattr(sandbox.settings.sandbox, "session_idle", IDLE_SECONDS))
        owner = sandbox.workspace_owner()
        folder = prepare_runner_dir(self.project, owner)
        key = secrets.token_bytes(protocol.KEY_SIZE)
        write_private(folder / protocol.KEY_FILE, key, owner)  # the runner takes it before any code runs
        labels = sandbox.labels(ROLE_KERNEL) | {policy.LABEL_SPEC: digest}
        spec = policy.container_spec(
            image=sandbox.image, settings=sandbox.settings, workspace=self.project.workspace,
            code_dir=sandbox.host_dir, labels=labels, ident=sandbox.identity,
            limits_enforced=sandbox.engine.limits_enforced,
            command=[*container_code.by_path(policy.prlimit_args(sandbox.settings, sandbox.engine.limits_enforced)),
                     container_code.PYTHON, f"{policy.CODE_DIR}/{self.runner_script}", "--serve",
                     f"{RUNNER_MOUNT}/{SOCKET_NAME}", "--idle", f"{idle:g}"])
        # imported here: workbench.network builds on this package's spec module
        from workbench.network.databases import with_access

        spec = with_access(spec.with_mounts(Mount(str(folder), RUNNER_MOUNT)), getattr(sandbox, "databases", None))
        from workbench.network.http_access import with_access as behind_proxy

        spec = behind_proxy(spec, getattr(sandbox, "http", None))
        container = sandbox.engine.create_container(spec)
        try:
            write_private(host_key_path(self.project), json.dumps({"container": container,
                                                                     "key": key.hex()}).encode())
            sandbox.engine.start(container)
        except BaseException:  # a container created but never started would stay behind ("Created")
            sandbox.engine.remove(container)
            raise
        try:
            identity = identify(sandbox.engine, container, self.project, under_gvisor(sandbox.settings))
        except OSError:
            sandbox.engine.remove(container)
            raise EngineUnavailable("the warm-session runner did not start in the sandbox: its container "
                                    "ended at once") from None
        except BaseException:  # its pid is not visible from here (EngineUnavailable), or interrupted
            sandbox.engine.remove(container)
            raise
        deadline = time.monotonic() + 15
        problem: str | None = ""
        while time.monotonic() < deadline:
            problem = self._ping(identity)
            if problem is None:
                return identity
            if problem:  # someone else answers in a container no user code has run in yet: give up
                break
            state = sandbox.engine.state(container)
            if state is not None and not state.running:
                break
            time.sleep(0.05)
        sandbox.engine.remove(container)
        raise EngineUnavailable(f"the warm-session runner did not start in the sandbox"
                                f"{': ' + problem if problem else ''}")

    def open_channel(self, timeout: float = 10.0) -> tuple[protocol.Channel, RunnerIdentity]:
        """A connection to the authenticated runner. When nobody answers (the container stopped: idle, or
        by hand) or someone else does, the container is looked up again (another process may have replaced
        it legitimately), removed if it still fails, and a fresh one started, once."""
        for attempt in range(2):
            identity = self.ensure()
            try:
                return connect(self.project, identity, timeout), identity
            except RunnerMisbehaved:
                if attempt:  # a fresh container answers wrongly too: end it as well
                    self.discard(identity)
                    raise
                self.forget(identity)
            except OSError:
                self.forget(identity)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def reset(self) -> None:
        """Look for the session container afresh at the next execution (after a change to what it runs)."""
        with self.lock:
            self._runner = None

    def forget(self, identity: RunnerIdentity) -> None:
        with self.lock:
            if self._runner == identity:
                self._runner = None

    def discard(self, identity: RunnerIdentity) -> None:
        """End the session container of a runner that misbehaved: the next execution starts a fresh one."""
        with self.lock:
            self.forget(identity)
            try:
                self.sandbox.engine.remove(identity.container)
            except Exception:  # noqa: BLE001 - the next ensure() removes it by label
                pass

    def take_incidents(self) -> list[str]:
        with self.lock:
            found, self._incidents = self._incidents, []
            return found

    def call(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        identity = self.ensure()
        try:
            return call(self.project, identity, message, timeout)
        except RunnerMisbehaved:
            self.discard(identity)
            raise

    def execute(self, runtime: languages.Language, code: str, *, timeout: float, session: str) -> LiveExecution:
        if not runtime.warm:
            warm = [lang.name for lang in languages.for_settings(self.sandbox.settings).items() if lang.warm]
            raise UsageError(f"{runtime.name} has no warm sessions (choose {', '.join(warm)}, "
                             "or run it without --session)")
        if not session or len(session) > 64 or not session.replace("-", "").replace("_", "").isalnum():
            raise UsageError("a session name is 1-64 letters, digits, - or _")
        self.ensure()
        request = Request(uuid.uuid4().hex[:16], runtime, code, timeout, session)
        return Execution(self.sandbox, request, WarmTransport(self, request)).start()

    def close(self) -> None:
        """Nothing to stop: the session container outlives this process by design (see module doc)."""


# --- `workbench session ...` -----------------------------------------------------------------------
def _session_call(project: Project, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any] | None:
    """One request to the project's running session container, None when there is none. A runner that
    misbehaves ends its session here too (its container is removed) and the error says so."""
    from workbench.sandbox.engine import connect as connect_engine

    engine = connect_engine(project.settings())
    try:
        running = [c for c in engine.list_containers({policy.LABEL_PROJECT: project.id,
                                                      policy.LABEL_ROLE: ROLE_KERNEL})
                   if c.state == "running"]
        if not running:
            return None
        try:
            identity = identify(engine, running[0].id, project, under_gvisor(project.settings()))
            return call(project, identity, message, timeout)
        except RunnerMisbehaved as exc:
            for container in running:
                engine.remove(container.id)
            raise RunnerMisbehaved(f"{exc}: the warm sessions were ended and their container removed",
                                   "the next execution with --session starts a fresh one") from None
        except (OSError, EOFError):
            return None
    finally:
        engine.close()


def _row(row: Any) -> dict[str, Any] | None:
    """A listing row as the CLI prints it, or None when it is not one (the runner is ours, but checked)."""
    if not isinstance(row, dict):
        return None
    texts = all(isinstance(row.get(k), str) for k in ("name", "language", "state"))
    numbers = isinstance(row.get("executions"), int) and isinstance(row.get("idle"), (int, float))
    return {k: row[k] for k in ("name", "language", "state", "executions", "idle")} if texts and numbers else None


def list_sessions(project: Project) -> list[dict[str, Any]]:
    """The warm interpreters alive in the project's session container (none when it is not running)."""
    answer = _session_call(project, {"op": "list"}) or {}
    rows = answer.get("sessions")
    return [r for r in map(_row, rows) if r is not None] if isinstance(rows, list) else []


def restart_session(project: Project, name: str, language: str | None = None) -> int:
    answer = _session_call(project, {"op": "restart", "session": name, "language": language}) or {}
    count = answer.get("restarted", 0)
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def stop_sessions(project: Project) -> bool:
    from workbench.sandbox.engine import connect as connect_engine

    engine = connect_engine(project.settings())
    try:
        found = engine.list_containers({policy.LABEL_PROJECT: project.id, policy.LABEL_ROLE: ROLE_KERNEL})
        for container in found:
            engine.remove(container.id)
        return bool(found)
    finally:
        engine.close()
