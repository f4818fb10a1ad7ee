"""`Sandbox`: the project's container for one work session, and one-off executions in it.

Lifecycle: `Sandbox.open` removes stale containers of this project left by a crashed process (found by
label: the owner process is gone, or the container is not running); the first one-off `execute` creates
and starts one container for this session, every later one is an exec in it; `close` removes it. Warm sessions
(`execute(..., session=NAME)`) live in a separate, longer-lived container: see `workbench.sandbox.kernels`.

Each one-off execution:
  * writes the code to a file in the read-only code folder (/opt/workbench inside, `.workbench/sandbox/code`
    on the host), runs the language's command from `workbench.runtimes` under `timeout` in its own
    process group (so a timeout or cancel kills every process it forked);
  * streams stdout and stderr live and apart (docker-py `exec_create` / `exec_start(stream, demux)` /
    `exec_inspect`: `exec_run(stream=True)` loses the exit code);
  * reports timed_out / killed_by (timeout, user, oom: exit 137 with the cgroup's oom_kill counter up),
    the files created/modified/deleted in the workspace, and notes (limits not enforced, PID limit hit).

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
from importlib import resources
from pathlib import Path
from typing import Any

from workbench import events, runtimes
from workbench.config import Settings
from workbench.errors import EngineUnavailable, UsageError
from workbench.events import EventBus
from workbench.project import Project
from workbench.sandbox import image as images
from workbench.sandbox import policy, workspace
from workbench.sandbox.diskguard import DiskGuard
from workbench.sandbox.engine import Engine, ExecHandle, connect
from workbench.sandbox.errors import ImageMissing
from workbench.sandbox.execution import EventSink, LiveExecution
from workbench.sandbox.types import ExecutionResult, InstallResult, PackageManager, SandboxInfo

log = logging.getLogger(__name__)

ROLE_EXEC = "exec"
# Runs each one-off execution: `timeout` leads a new process group holding everything the code forks;
# its pid goes to a file so cancel() can signal the group; when the code ends, whatever it left running
# in that group (background jobs, a fork bomb) is killed, so nothing outlives its execution.
# One kill is not always enough: a fork bomb's processes that are mid-fork when the group is signalled
# can leave children behind. So the group is killed again until none of it is left, killed processes
# included, which hold their PID slots until reaped: the next execution must find the PID limit free.
# Then every other process in the container is killed the same way (`kill -1` spares only PID 1 and the
# wrapper itself): code that left its group (`setsid`, a daemon's double fork) must not outlive the
# execution and write into the next one's record. One-off executions of a sandbox run one at a time
# (`Sandbox._one_at_a_time`), so whatever else is alive in the container is this execution's.
# (At most about 3 s each; `sleep` may fail to start while the slots are taken, which only shortens a round.)
WRAPPER = ('id=$0; grace=$1; shift; timeout -k "$grace" "$@" & p=$!; echo $p > /tmp/.wb-$id.pid; '
           'wait $p; rc=$?; i=0; while kill -KILL -$p 2>/dev/null && [ $i -lt 60 ]; do i=$((i+1)); '
           'sleep 0.05 2>/dev/null; done; n=0; while kill -KILL -1 2>/dev/null && [ $n -lt 60 ]; do '
           'n=$((n+1)); sleep 0.05 2>/dev/null; done; '
           'rm -f /tmp/.wb-$id.pid; exit $rc')
SANDBOX_STARTED = "sandbox.started"
KILL_GRACE = 2  # seconds between SIGTERM and SIGKILL for a timed-out or cancelled execution
NOT_ENFORCED = ("memory, CPU and PID limits are not enforced by this engine (rootless Podman on cgroup v1); "
                "rlimits and the timeout stand in")


def project_image(project: Project) -> str:
    """The per-project image (base + apt packages), named after the project's id."""
    return f"localhost/workbench-project-{project.id[:12]}:latest"


DEAD_STATES = ("created", "configured", "exited", "stopped")  # never started, or ended


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
        self._oom_kills = 0
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()  # one-off executions: see WRAPPER
        self._kernels = None  # workbench.sandbox.kernels.Kernels, made on first warm execution
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
        sandbox.remove_stale()  # the container itself starts with the first one-off execution
        info = sandbox.info
        sandbox._emit(SANDBOX_STARTED, {"engine": info.engine, "endpoint": info.endpoint,
                                        "rootless": info.rootless, "limits_enforced": info.limits_enforced,
                                        "image": info.image, "limits": info.limits,
                                        "user": sandbox.identity.user,
                                        "mapping": sandbox.identity.mapping})
        return sandbox

    def _prepare_host(self) -> None:
        self.project.workspace.mkdir(parents=True, exist_ok=True)
        self.code_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.host_dir, 0o755)
        os.chmod(self.code_dir, 0o755)
        install_runner(self.code_dir)
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
            command=["python3", f"{policy.CODE_DIR}/runner.py", "--init"])
        container = self.engine.create_container(spec)
        try:
            self.engine.start(container)
        except Exception as exc:
            self.engine.remove(container)
            raise EngineUnavailable(f"the sandbox container did not start: {exc}") from exc
        self.container = container

    def _ensure_running(self) -> str:
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

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
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
                session: str | None = None) -> LiveExecution:
        runtime = runtimes.get(language)
        timeout = float(timeout if timeout is not None else self.settings.sandbox.timeout)
        if timeout <= 0:
            raise UsageError("the timeout must be a positive number of seconds")
        if session is not None:
            return self.kernels().execute(runtime, code, timeout=timeout, session=session)
        execution_id = uuid.uuid4().hex[:16]
        sink = EventSink(self.bus, self.session_id, self.actor, execution_id)
        sink.emit(events.EXEC_STARTED, {"execution_id": execution_id, "language": runtime.name, "code": code,
                                        "session": None, "limits": policy.limits(self.settings) | {
                                            "timeout": timeout, "enforced": self.engine.limits_enforced}})
        sink.start()
        return OneOffRun(self, runtime, code, timeout, execution_id, sink).start()

    def kernels(self):
        if self._kernels is None:
            from workbench.sandbox.kernels import Kernels

            self._kernels = Kernels(self)
        return self._kernels

    def run_quiet(self, cmd: list[str], user: str | None = None) -> tuple[int | None, bytes]:
        """Run a helper command in the container and collect its output (not an audited execution)."""
        handle = self.engine.exec_create(self._ensure_running(), cmd, user=user or self.identity.user,
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


class OneOffRun:
    """A one-off execution through the engine's exec API (one process tree per run)."""

    def __init__(self, sandbox: Sandbox, runtime: runtimes.Runtime, code: str, timeout: float,
                 execution_id: str, sink: EventSink):
        self.sandbox, self.runtime, self.code, self.timeout = sandbox, runtime, code, timeout
        self.execution_id = execution_id
        self.code_file = sandbox.code_dir / f"x-{execution_id}{runtime.extension}"
        self.live = LiveExecution(execution_id, sink, sandbox.settings.sandbox.output_cap,
                                  self._finalize, self._cancel)
        self.before: workspace.Snapshot = {}
        self.handle: ExecHandle | None = None
        self.container = ""
        self.killed_by: str | None = None
        self.guard: DiskGuard | None = None
        self.holds_slot = False

    def start(self) -> LiveExecution:
        sandbox = self.sandbox
        self.code_file.write_text(self.code, encoding="utf-8")
        os.chmod(self.code_file, 0o644)
        inside = f"{policy.CODE_DIR}/code/{self.code_file.name}"
        cmd = runtimes.command(self.runtime, file=inside, python=sandbox.python_path(),
                               database=f"{policy.WORKSPACE}/{sandbox.settings.sandbox.sql_database}")
        limits = policy.prlimit_args(sandbox.settings, sandbox.engine.limits_enforced)
        wrapped = ["/bin/sh", "-c", WRAPPER, self.execution_id, str(KILL_GRACE), f"{self.timeout:g}s",
                   *limits, *cmd]
        sandbox._one_at_a_time.acquire()
        self.holds_slot = True
        try:
            self.before = workspace.snapshot(sandbox.project.workspace, owner=sandbox.workspace_owner())
            self.container = sandbox._ensure_running()
            self.handle = sandbox.engine.exec_create(self.container, wrapped, user=sandbox.identity.user,
                                                     env=dict(policy.BASE_ENV), workdir=policy.WORKSPACE)
            stream = sandbox.engine.exec_stream(self.handle)
        except Exception as exc:
            self._cleanup()
            self.live.finish(None, error=f"the engine refused the execution: {exc}")
            return self.live
        threading.Thread(target=self._pump, args=(stream,), name=f"exec-{self.execution_id}",
                         daemon=True).start()
        threading.Thread(target=self._watchdog, name=f"exec-watchdog-{self.execution_id}", daemon=True).start()
        self.guard = DiskGuard(sandbox.project.workspace, policy.parse_size(sandbox.settings.sandbox.disk_floor),
                               self._disk_low).start()
        return self.live

    def _disk_low(self, free: int) -> None:
        self.killed_by = "disk"
        self._signal("KILL")

    def _pump(self, stream) -> None:
        exit_code: int | None = None
        error = None
        try:
            for stdout, stderr in stream:
                if stdout:
                    self.live.feed("stdout", stdout)
                if stderr:
                    self.live.feed("stderr", stderr)
            assert self.handle is not None
            exit_code = self.sandbox.engine.exec_exit_code(self.handle)
        except Exception as exc:  # the engine went away mid-run: still end the execution
            error = f"lost the engine during the execution: {exc}"
        finally:
            self._cleanup()
            self.live.finish(exit_code, error=error)

    def _watchdog(self) -> None:
        # `timeout` inside the container is the first line; this is the backstop if it cannot act
        # (e.g. the PID limit is exhausted and nothing can be forked).
        if not self.live.wait(self.timeout + KILL_GRACE + 5):
            self.killed_by = self.killed_by or "timeout"
            self._signal("KILL")

    def _signal(self, sig: str) -> None:
        # dash's kill takes no "--"; "-PID" is the process group `timeout` leads.
        script = f'p=$(cat /tmp/.wb-$0.pid 2>/dev/null) && {{ kill -{sig} -"$p"; kill -{sig} "$p"; }} 2>/dev/null; true'
        try:
            self.sandbox.run_quiet(["/bin/sh", "-c", script, self.execution_id])
        except Exception as exc:
            log.warning("could not signal execution %s: %s", self.execution_id, exc)

    def _cancel(self) -> None:
        self.killed_by = "user"
        self._signal("TERM")
        if not self.live.wait(KILL_GRACE):
            self._signal("KILL")

    def _cleanup(self) -> None:
        try:
            self.code_file.unlink()
        except OSError:
            pass
        if self.holds_slot:  # the wrapper has ended, and with it every process of this execution
            self.holds_slot = False
            self.sandbox._one_at_a_time.release()

    def _finalize(self, live: LiveExecution) -> ExecutionResult:
        sandbox = self.sandbox
        exit_code = live.exit_code
        notes = list(sandbox.notes())
        if self.guard is not None:
            self.guard.stop()
            if self.guard.tripped:
                notes.append(f"stopped: the disk holding the workspace fell under "
                             f"{sandbox.settings.sandbox.disk_floor} free ([sandbox] disk_floor); "
                             f"free up space, then run again")
        if live.extra.get("error"):
            notes.append(live.extra["error"])
        duration = live.duration
        killed_by = self.killed_by
        timed_out = killed_by == "timeout" or (
            killed_by is None and exit_code in (124, 137, 143) and duration >= self.timeout * 0.98)
        if timed_out:
            killed_by = "timeout"
            notes.append(f"stopped after the {self.timeout:g} s timeout")
        elif killed_by is None and exit_code == 137:
            count = sandbox.oom_kills()
            if count is None or count > sandbox._oom_kills:
                killed_by = "oom"
                notes.append(f"killed: out of memory (limit {sandbox.settings.sandbox.memory})")
            if count is not None:
                sandbox._oom_kills = count
        elif exit_code == 125 and b"runc" in live.records["stderr"].summary().kept + \
                live.records["stdout"].summary().kept:
            notes.append("the engine could not start the process (PID limit reached?)")
        after = workspace.snapshot(sandbox.project.workspace)
        changes = workspace.diff(sandbox.project.workspace, self.before, after)
        notes.extend(workspace.notes(changes))
        quota = policy.parse_size(sandbox.settings.sandbox.workspace_quota)
        if changes and workspace.size_of(after) > quota:
            notes.append(f"the workspace is over its quota of {sandbox.settings.sandbox.workspace_quota}")
        return ExecutionResult(
            execution_id=self.execution_id, language=self.runtime.name, code=self.code, exit_code=exit_code,
            duration=duration, timed_out=timed_out, killed_by=killed_by,  # type: ignore[arg-type]
            stdout=live.records["stdout"].summary(), stderr=live.records["stderr"].summary(),
            files=changes, artifacts=workspace.artifacts(changes), session=None,
            limits_enforced=sandbox.engine.limits_enforced, notes=tuple(notes))


def install_runner(code_dir: Path) -> Path:
    """Copy runner.py (shipped in this package) into the code folder the container sees read-only."""
    source = resources.files("workbench.sandbox").joinpath("runner.py").read_bytes()
    target = code_dir.parent / "runner.py"
    if not target.exists() or target.read_bytes() != source:
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(source)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    return target
