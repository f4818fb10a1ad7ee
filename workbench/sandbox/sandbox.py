"""`Sandbox`: the project's container for one work session, and one-off executions in it.

Lifecycle: `Sandbox.open` removes stale containers of this project left by a crashed process (found by
label: the owner process is gone, or the container is not running); the first one-off `execute` creates
and starts one container for this session, every later one is an exec in it; `close` removes it. Warm sessions
(`execute(..., session=NAME)`) live in a separate, longer-lived container: see `workbench.sandbox.kernels`.

Every execution, one-off or warm, goes through the same lifecycle (`workbench.sandbox.lifecycle`: the
`exec.started` event, the workspace snapshot, the disk guard, live output, the notes, the file diff, the
result); they differ only in their transport: `workbench.sandbox.oneoff` (the engine's exec API, one
process tree per run, reporting timed_out / killed_by: timeout, user, oom, disk) or `workbench.sandbox.warm`
(the session container's runner).

The engine may be remote (DOCKER_HOST=ssh://...): the workspace bind mount and the code folder are paths
on the engine's machine, so they must be shared with it (same machine, or the same path over NFS).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from workbench import events, languages
from workbench.config import Settings
from workbench.errors import EngineUnavailable, UsageError
from workbench.events import EventBus
from workbench.project import Project
from workbench.sandbox import container as container_code
from workbench.sandbox import image as images
from workbench.sandbox import policy
from workbench.sandbox.engine import Engine, connect
from workbench.sandbox.errors import ImageMissing
from workbench.sandbox.execution import LiveExecution
from workbench.sandbox.lifecycle import Execution, Request
from workbench.sandbox.oneoff import OneOffTransport
from workbench.sandbox.types import InstallResult, PackageManager, SandboxInfo

log = logging.getLogger(__name__)

ROLE_EXEC = "exec"
SANDBOX_STARTED = events.SANDBOX_STARTED
NOT_ENFORCED = ("memory, CPU and PID limits are not enforced by this engine (rootless Podman on cgroup v1); "
                "rlimits and the timeout stand in")


def project_image(project: Project) -> str:
    """The per-project image (base + apt packages), named after the project's id."""
    return f"localhost/workbench-project-{project.id[:12]}:latest"


DEAD_STATES = ("created", "configured", "exited", "stopped")  # never started, or ended


def database_mounts(spec, access):
    """`spec` with the session's database socket mounted, when its policy allows databases (imported
    here, not at the top: workbench.network builds on this package's spec module)."""
    from workbench.network.databases import with_access

    return with_access(spec, access)


def http_proxy(spec, access):
    """`spec` behind the session's HTTP policy proxy, when its policy has http rules (imported here for
    the same reason as `database_mounts`)."""
    from workbench.network.http_access import with_access

    return with_access(spec, access)


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Sandbox:
    """Implements `SandboxAPI` over a container engine."""

    def __init__(self, project: Project, engine: Engine, settings: Settings, bus: EventBus | None,
                 session_id: str, actor: str, image: str):
        self.project = project
        self.engine = engine
        self.settings = settings
        self.bus = bus
        self.session_id = session_id
        self.actor = actor
        self.image = image
        self.identity = policy.identity(engine.rootless, engine.is_podman)
        self.host_dir = project.state_dir / "sandbox"  # mounted read-only at /opt/workbench
        self.code_dir = self.host_dir / "code"
        self.container: str | None = None
        self.oom_kill_count = 0  # the cgroup's OOM-kill counter as last read (one-off runs compare)
        # /tmp (also HOME) is emptied before the next one-off execution: set when the container comes from an
        # earlier session (the service's pool), so a session never sees what another one left there
        self.scrub_tmp = False
        self._lock = threading.Lock()
        self.one_at_a_time = threading.Lock()  # one-off executions run one at a time: see oneoff.WRAPPER
        self._kernels = None  # workbench.sandbox.kernels.Kernels, made on first warm execution
        self.databases = None  # workbench.network.databases.DatabaseAccess: the policy's postgres:// rules
        self.http = None  # workbench.network.http_access.HttpAccess: the policy's http(s) rules
        self._closed = False

    # --- opening and closing --------------------------------------------------------------------
    @classmethod
    def open(cls, project: Project, *, bus: EventBus | None = None, session_id: str | None = None,
             actor: str | None = None, settings: Settings | None = None, engine: Engine | None = None
             ) -> Sandbox:
        settings = settings or project.settings()
        engine = engine or connect(settings)
        image = settings.sandbox.image or (project_image(project) if engine.image_exists(project_image(project))
                                            else images.BASE_IMAGE)
        if not engine.image_exists(image):
            engine.close()
            raise ImageMissing(f"the sandbox image {image} is missing", "run: workbench setup")
        sandbox = cls(project, engine, settings, bus, session_id or events.new_session_id(),
                      actor or events.current_user(), image)
        sandbox._prepare_host()
        sandbox._open_databases()
        sandbox._open_http()
        try:
            sandbox.remove_stale()  # the container itself starts with the first one-off execution
        except BaseException:
            sandbox.close()  # PgBouncer too: it holds a password
            raise
        info = sandbox.info
        sandbox._emit(events.SANDBOX_STARTED, events.SandboxStarted(
            engine=info.engine, endpoint=info.endpoint, rootless=info.rootless,
            limits_enforced=info.limits_enforced, image=info.image, limits=info.limits,
            user=sandbox.identity.user, mapping=sandbox.identity.mapping))
        return sandbox

    def _prepare_host(self) -> None:
        self.project.workspace.mkdir(parents=True, exist_ok=True)
        self.code_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.host_dir, 0o755)
        os.chmod(self.code_dir, 0o755)
        container_code.install(self.host_dir)
        cutoff = time.time() - 86400
        for old in self.code_dir.glob("x-*"):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass
        owner = self.workspace_owner()
        if owner is not None:
            policy.hand_workspace_to(self.project.workspace, *owner)

    def _open_databases(self) -> None:
        """PgBouncer and its socket for the session when the project's policy allows databases."""
        from workbench.network.databases import DatabaseAccess

        try:
            self.databases = DatabaseAccess.open(self.project.state_dir, self.project.root,
                                                 lambda payload: self._emit(events.NET_CONNECTION, payload),
                                                 self.workspace_owner(), bus=self.bus)
        except BaseException:
            self.engine.close()
            raise

    def _open_http(self) -> None:
        """The HTTP policy proxy's socket for the session when the project's policy has http rules."""
        from workbench.network.http_access import HttpAccess

        try:
            self.http = HttpAccess.open(self.project.state_dir, self.project.root,
                                        lambda payload: self._emit(events.NET_REQUEST, payload),
                                        self.workspace_owner(), bus=self.bus)
        except BaseException:
            self.close()  # PgBouncer too: it holds a password
            raise
        if self.http is not None and self.bus is not None:
            from workbench.network.redact import RedactingBus

            self.bus = RedactingBus(self.bus, self.http.injected)  # no injected secret is ever kept

    def labels(self, role: str) -> dict[str, str]:
        return {policy.LABEL_PROJECT: self.project.id, policy.LABEL_ROLE: role, policy.LABEL_OWNER: owner_label()}

    def remove_stale(self) -> int:
        """Remove this project's one-off containers whose owner process died or that stopped, and any
        project's Workbench containers that are not running and whose owner process on this machine is
        gone (created but never started, or stopped: a process killed at the wrong moment leaves them)."""
        removed = 0
        found = self.engine.list_containers({policy.LABEL_PROJECT: self.project.id,
                                             policy.LABEL_ROLE: ROLE_EXEC})
        for container in found:
            owner = container.labels.get(policy.LABEL_OWNER, "")
            if container.state != "running" or not _owner_alive(owner):
                self.engine.remove(container.id)
                removed += 1
        seen = {c.id for c in found}
        for container in self.engine.list_containers({policy.LABEL_OWNER: ""}):
            owner = container.labels.get(policy.LABEL_OWNER, "")
            if (container.id not in seen and container.state in DEAD_STATES
                    and owner.rpartition(":")[0] == socket.gethostname() and not _owner_alive(owner)):
                self.engine.remove(container.id)
                removed += 1
        return removed

    def _start_container(self) -> None:
        spec = policy.container_spec(
            image=self.image, settings=self.settings, workspace=self.project.workspace, code_dir=self.host_dir,
            labels=self.labels(ROLE_EXEC), ident=self.identity, limits_enforced=self.engine.limits_enforced,
            command=[container_code.PYTHON, f"{policy.CODE_DIR}/runner.py", "--init"])
        spec = http_proxy(database_mounts(spec, self.databases), self.http)
        container = self.engine.create_container(spec)
        try:
            self.engine.start(container)
        except Exception as exc:
            self.engine.remove(container)
            raise EngineUnavailable(f"the sandbox container did not start: {exc}") from exc
        self.container = container

    def ensure_running(self) -> str:
        """The container, restarted if user code (or anything) stopped it."""
        with self._lock:
            state = self.engine.state(self.container) if self.container else None
            if state is None or not state.running:
                if self.container:
                    self.engine.remove(self.container)
                self._start_container()
            assert self.container is not None
            return self.container

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._kernels is not None:
                self._kernels.close()
            if self.http is not None:
                self.http.close()
            if self.databases is not None:
                self.databases.close()
            if self.container:
                try:
                    self.engine.remove(self.container, force=True)
                except Exception as exc:  # closing must not fail: the next start removes it by label
                    log.warning("could not remove container %s (%s); it is cleaned up at the next start",
                                self.container[:12], exc)
        finally:
            self.container = None
            self.engine.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what it is -----------------------------------------------------------------------------
    @property
    def info(self) -> SandboxInfo:
        return SandboxInfo(engine=self.engine.version, endpoint=self.engine.endpoint, rootless=self.engine.rootless,
                           limits_enforced=self.engine.limits_enforced, image=self.image,
                           limits=policy.limits(self.settings))

    def notes(self) -> tuple[str, ...]:
        return () if self.engine.limits_enforced else (NOT_ENFORCED,)

    def _emit(self, kind: str, payload: events.Payload | dict[str, Any]) -> None:
        if self.bus is not None:
            self.bus.emit(kind, self.session_id, self.actor, payload)

    def workspace_owner(self) -> tuple[int, int] | None:
        """The uid:gid the workspace must belong to before a run (rootful engine run by root), else None."""
        if not self.identity.chown_workspace:
            return None
        return self.identity.host_owner

    def python_path(self) -> str:
        venv_python = self.project.workspace / ".venv" / "bin" / "python"
        return "/workspace/.venv/bin/python" if os.path.lexists(venv_python) else "python3"

    # --- executing ------------------------------------------------------------------------------
    def execute(self, language: str, code: str, *, timeout: float | None = None,
                session: str | None = None, database: str | None = None) -> LiveExecution:
        from workbench.network.databases import language_for

        language = language_for(self.databases, language, database)  # --db: a database the policy allows
        runtime = languages.prepare(self, language)  # the project's [languages] too; apt packages first
        timeout = float(timeout if timeout is not None else self.settings.sandbox.timeout)
        if timeout <= 0:
            raise UsageError("the timeout must be a positive number of seconds")
        if session is not None:
            return self.kernels().execute(runtime, code, timeout=timeout, session=session)
        request = Request(uuid.uuid4().hex[:16], runtime, code, timeout, database=database)
        return Execution(self, request, OneOffTransport(self, request)).start()

    def kernels(self):
        if self._kernels is None:
            from workbench.sandbox.kernels import Kernels

            self._kernels = Kernels(self)
        return self._kernels

    def run_quiet(self, cmd: list[str], user: str | None = None) -> tuple[int | None, bytes]:
        """Run a helper command in the container and collect its output (not an audited execution)."""
        handle = self.engine.exec_create(self.ensure_running(), cmd, user=user or self.identity.user,
                                         env=dict(policy.BASE_ENV), workdir=policy.WORKSPACE)
        out = bytearray()
        for stdout, stderr in self.engine.exec_stream(handle):
            out += (stdout or b"") + (stderr or b"")
        return self.engine.exec_exit_code(handle), bytes(out)

    def oom_kills(self) -> int | None:
        """The container cgroup's OOM-kill counter (cgroup v1 or v2), None where unreadable."""
        _code, out = self.run_quiet(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.oom_control "
                                     "/sys/fs/cgroup/memory.events 2>/dev/null"])
        for line in out.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "oom_kill" and parts[1].isdigit():
                return int(parts[1])
        return None

    def install(self, manager: PackageManager, packages: Sequence[str], *,
                progress: Callable[[str], None] | None = None) -> InstallResult:
        """Install into the workspace (pip, r) or the project image (apt); `progress` gets log lines."""
        from workbench.sandbox.install import install

        return install(self, manager, packages, progress)

    def use_image(self, image: str) -> None:
        """Switch to `image` (after an apt install): the next execution starts a container from it."""
        with self._lock:
            self.image = image
            if self.container:
                self.engine.remove(self.container)
                self.container = None
