"""Warm sessions, host side: the project's session container and the client of its runner.

The session container (label role=kernel) runs `runner.py --serve` as PID 1 with the same isolation and
limits as the one-off container. It is per project, not per process: it outlives the `workbench exec`
that started it, so `workbench exec --session s1 -c 'x = 42'` and a later `... -c 'print(x)'` in a new
process share `x`. It stops:
  * by itself after `IDLE_SECONDS` without a request (`sandbox.session_idle` when that setting exists),
    or as soon as its socket disappears (the project folder was deleted),
  * on `workbench session stop`, or when the image or limits change (it is then recreated),
  * when its runner misbehaves or someone else answers in its place (see below): it is removed, the
    execution ends with a one-line error, and the next one starts a fresh container,
and its state is gone with it (the next execution says `state_lost` only when an interpreter died
mid-life; a fresh container simply starts empty).

The runner cannot be impersonated. Code in the session container runs as the same uid as the runner, so
the channel is protected by who may reach it, by a key only the two ends hold, and by who answers, not by
file permissions (runner.py's docstring has the runner's side):
  * its socket lives in `.workbench/runner/` (RUNNER_DIR), a host folder private to Workbench that is
    mounted only into the session container, at /run/workbench. It is not in the workspace, so one-off
    and install containers never see it; the host never follows anything planted there (the folder is
    opened with O_NOFOLLOW, the socket must be a socket, and the folder is recreated for each container);
  * a session key, made by the host for each container: handed to the runner in a file it deletes before
    any code runs, kept on the host in `.workbench/runner.key` (0600, mounted nowhere) for the project's
    other Workbench processes. Every frame is tagged under it (a per-connection key from a fresh nonce, a
    sequence number per direction): a reply that code wrote, altered, replayed or reordered is refused;
  * before it sends a byte, the host checks who listens: SO_PEERCRED must name the container's init process
    as the engine reports it (State.Pid, with its start time from /proc so a recycled pid does not pass),
    so under runc a socket bound by any other process (user code that replaced the socket) is refused at
    once. Under gVisor every socket of the container is held by its gofer on the host, so there the check
    is that the listener is a process of this container's runtime (a sibling of State.Pid) and the key
    does the rest;
  * the runner makes itself non-dumpable, so same-uid code can neither ptrace it (for the key) nor take
    its listening socket from /proc/1/fd, and it hangs up on clients inside its PID namespace.
The host takes the duration and the output digests from what it observes itself (the clock around the
exchange; every stdout/stderr byte as it arrives); only the exit code and the flags (timed out,
interrupted, killed by, state lost, background processes killed) come from the authenticated runner, and
each is checked for type. A frame of another kind, over MAX_REPLY_FRAME, cut short, JSON that is not an
object, an unknown field, or silence past the cell's timeout ends that warm session (RunnerMisbehaved).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import stat
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import events, runtimes
from workbench.errors import EngineUnavailable, UsageError, WorkbenchError
from workbench.inert import one_line
from workbench.project import Project
from workbench.sandbox import policy, runner, workspace
from workbench.sandbox.diskguard import DiskGuard
from workbench.sandbox.execution import EventSink, LiveExecution
from workbench.sandbox.spec import Mount
from workbench.sandbox.types import ExecutionResult

if TYPE_CHECKING:
    from workbench.sandbox.engine import Engine
    from workbench.sandbox.sandbox import Sandbox

ROLE_KERNEL = "kernel"
RUNNER_DIR = "runner"  # under the project's .workbench/: private to Workbench, mounted only at RUNNER_MOUNT
RUNNER_MOUNT = "/run/workbench"
SOCKET_NAME = "runner.sock"
HOST_KEY_FILE = "runner.key"  # under .workbench/: {"container": id, "key": hex} of the running session container
PROTOCOL = 3  # part of the container's spec digest: a container speaking an older protocol is replaced
IDLE_SECONDS = 1800.0
WARM_LANGUAGES = ("python", "shell", "r")
MAX_REPLY_FRAME = 1 << 20  # the runner forwards output in reads of 64 KiB; its JSON answers are small
OUTCOME_FIELDS: dict[str, tuple[type, ...]] = {
    "done": (bool,), "exit_code": (int, type(None)), "timed_out": (bool,), "interrupted": (bool,),
    "state_lost": (bool,), "killed_by": (str, type(None)), "error": (str, type(None)),
    "background_killed": (int,)}
KILLED_BY = (None, "timeout", "user", "oom")


class RunnerMisbehaved(WorkbenchError):
    """The runner (or whatever answered in its place) broke the protocol: one line saying how."""


@dataclass(frozen=True)
class RunnerIdentity:
    """Who must be at the other end of the socket: the session container's PID 1, holding its key."""

    container: str
    pid: int  # in this process's PID namespace (the engine's State.Pid)
    started: str  # its start time (field 22 of /proc/PID/stat): a recycled pid has another
    key: bytes = field(repr=False)
    runtime_parent: int | None = None  # under gVisor: the listener is a child of this (the engine's monitor)


def runner_dir(project: Project) -> Path:
    return project.state_dir / RUNNER_DIR


def socket_path(project: Project) -> Path:
    return runner_dir(project) / SOCKET_NAME


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ... (None when there is no such process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19].decode() if fields and len(fields) > 19 else None


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def under_gvisor(settings: Any) -> bool:
    check = getattr(policy, "under_gvisor", None)  # the runtime setting, where this version has one
    return bool(check(settings)) if check is not None else False


def host_key_path(project: Project) -> Path:
    return project.state_dir / HOST_KEY_FILE


def read_host_key(project: Project, container: str) -> bytes | None:
    """The session key recorded for `container`, or None (another container's, or none)."""
    try:
        fd = os.open(host_key_path(project), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        record = json.loads(os.read(fd, 4096))
        key = bytes.fromhex(record["key"]) if record.get("container") == container else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        key = None
    finally:
        os.close(fd)
    return key if key is not None and len(key) == runner.KEY_SIZE else None


def _write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Write `data` to a new 0600 file (never through a planted name: O_EXCL | O_NOFOLLOW), then move it in."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def identify(engine: Engine, container: str, project: Project, gvisor: bool = False) -> RunnerIdentity:
    """Who the runner of `container` is, from the engine and the host's key record (never from anything
    inside the container). OSError when it is not running or its key is not ours."""
    state = engine.state(container)
    pid = state.pid if state is not None else None
    if state is None or not state.running or pid is None:
        raise OSError(f"the session container {container[:12]} is not running")
    started = process_start(pid)
    if started is None:
        raise EngineUnavailable(f"cannot check who answers for the warm-session runner: the engine's process "
                                f"{pid} is not visible from here (is the engine in another PID namespace?)",
                                "run without --session, or run Workbench beside the engine")
    key = read_host_key(project, container)
    if key is None:
        raise OSError(f"no session key is recorded for the session container {container[:12]}")
    return RunnerIdentity(container, pid, started, key, parent_of(pid) if gvisor else None)


def connect(project: Project, expected: RunnerIdentity, timeout: float = 5.0) -> runner.Channel:
    """A keyed channel to the runner, after checking that `expected` is the process that listens.

    OSError: nobody answers (the container stopped or is starting). RunnerMisbehaved: someone answers,
    but not the runner, or the socket is not a socket. Nothing has been sent in either case."""
    dir_fd = os.open(runner_dir(project), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.stat(SOCKET_NAME, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISSOCK(st.st_mode):
            raise RunnerMisbehaved(f"the runner's {SOCKET_NAME} was replaced by something that is not a socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    # Through the held folder: the project path may be longer than a socket path may be
                    # (~100 bytes).
                    sock.connect(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")
                    break
                except BlockingIOError:  # its backlog is full for a moment (many connections at once)
                    if time.monotonic() > deadline:
                        raise TimeoutError("the warm-session runner's socket stayed busy") from None
                    time.sleep(0.005)
            pid = runner.peer_pid(sock)
        except BaseException:
            sock.close()
            raise
    finally:
        os.close(dir_fd)
    if expected.runtime_parent is not None:  # gVisor: the container's gofer holds every socket it binds
        listener_ok = pid == expected.pid or parent_of(pid) == expected.runtime_parent
    else:
        listener_ok = pid == expected.pid and process_start(pid) == expected.started
    if not listener_ok:
        sock.close()
        raise RunnerMisbehaved(f"process {pid} answered on the runner's socket, not the runner "
                               f"(the session container's PID 1 is process {expected.pid})")
    try:
        return runner.Channel.open(sock, expected.key)
    except BaseException:
        sock.close()
        raise


def _keyed(exc: runner.ProtocolError) -> RunnerMisbehaved:
    if isinstance(exc, runner.Forged):
        return RunnerMisbehaved("a reply on the runner's socket does not carry the session's key: someone "
                                "other than the runner answered")
    return RunnerMisbehaved(f"the warm-session runner broke the framing: {exc}")


def call(project: Project, expected: RunnerIdentity, message: dict[str, Any], timeout: float = 10.0
         ) -> dict[str, Any]:
    """One request, one JSON answer, from the authenticated runner."""
    with connect(project, expected, timeout) as channel:
        channel.send_json(message)
        try:
            return channel.recv_object(MAX_REPLY_FRAME)
        except runner.ProtocolError as exc:
            raise _keyed(exc) from None


def parse_outcome(obj: dict[str, Any]) -> dict[str, Any]:
    """The runner's final answer, checked field by field (RunnerMisbehaved on anything unexpected)."""
    for key, value in obj.items():
        kinds = OUTCOME_FIELDS.get(key)
        if kinds is None:
            raise RunnerMisbehaved(f"the warm-session runner's answer has an unknown field {one_line(key)[:40]!r}")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RunnerMisbehaved(f"the warm-session runner's answer has a bad {key}: {one_line(repr(value))[:40]}")
    if obj.get("done") is not True:
        raise RunnerMisbehaved("the warm-session runner sent a JSON frame that is not its final answer")
    if obj.get("killed_by") not in KILLED_BY:
        raise RunnerMisbehaved(f"the warm-session runner's answer has a bad killed_by: "
                               f"{one_line(str(obj['killed_by']))[:40]}")
    if obj.get("background_killed", 0) < 0:
        raise RunnerMisbehaved("the warm-session runner's answer has a negative background_killed")
    return obj


def prepare_runner_dir(project: Project, owner: tuple[int, int] | None) -> Path:
    """A fresh, empty folder for the next session container's socket. Whatever code in an earlier one left
    there is moved aside first (a rename works whatever it holds), then removed as far as it can be:
    shutil.rmtree works on fds and never follows a symlink; folders code made unwritable are opened up by fd.
    Mode 0700: only Workbench and the sandbox uid."""
    folder = runner_dir(project)
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            aside = folder.with_name(f"{RUNNER_DIR}.old-{uuid.uuid4().hex[:8]}")
            os.rename(folder, aside)
            _remove_tree(aside)
        else:  # a received project's .workbench/runner symlink (or file): ours to replace, never to follow
            os.unlink(folder)
    for old in folder.parent.glob(f"{RUNNER_DIR}.old-*"):  # what an earlier removal could not finish
        _remove_tree(old)
    os.mkdir(folder, 0o700)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    return folder


def _remove_tree(path: Path) -> None:
    def open_up(_function: Any, failed: str, _exc: Any) -> None:
        # An entry could not be removed: its folder may be read-only (code chmod'ed it). Open that folder up
        # through an fd held without following links, then try once more; what still fails stays behind.
        try:
            fd = os.open(os.path.dirname(failed), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fchmod(fd, 0o700)
            os.unlink(os.path.basename(failed), dir_fd=fd)
        except IsADirectoryError:
            shutil.rmtree(failed, ignore_errors=True)
        except OSError:
            pass
        finally:
            os.close(fd)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=open_up)
    else:
        shutil.rmtree(path, onerror=open_up)
    try:
        os.rmdir(path)
    except OSError:
        pass


class Kernels:
    """Warm executions for one `Sandbox`."""

    reply_slack = 30.0  # seconds beyond a cell's timeout (and the runner's grace) the host waits for its end
    runner_script = "runner.py"  # in the code folder (/opt/workbench); tests swap in a misbehaving one

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.project = sandbox.project
        self._lock = threading.RLock()
        self._runner: RunnerIdentity | None = None
        self._incidents: list[str] = []  # why a container was replaced, for the next execution's notes

    def spec_digest(self) -> str:
        settings = self.sandbox.settings
        key = json.dumps([self.sandbox.image, policy.limits(settings), self.sandbox.identity.user, PROTOCOL,
                          self.runner_script, hashlib.sha256(Path(runner.__file__).read_bytes()).hexdigest()],
                         sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def ensure(self) -> RunnerIdentity:
        """This project's running session container's runner, checked to answer as itself; else a new one."""
        with self._lock:
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
        key = secrets.token_bytes(runner.KEY_SIZE)
        _write_private(folder / runner.KEY_FILE, key, owner)  # the runner takes it before any code runs
        labels = sandbox.labels(ROLE_KERNEL) | {policy.LABEL_SPEC: digest}
        spec = policy.container_spec(
            image=sandbox.image, settings=sandbox.settings, workspace=self.project.workspace,
            code_dir=sandbox.host_dir, labels=labels, ident=sandbox.identity,
            limits_enforced=sandbox.engine.limits_enforced,
            command=[*policy.prlimit_args(sandbox.settings, sandbox.engine.limits_enforced),
                     "python3", f"{policy.CODE_DIR}/{self.runner_script}", "--serve",
                     f"{RUNNER_MOUNT}/{SOCKET_NAME}", "--idle", f"{idle:g}"])
        spec = spec.with_mounts(Mount(str(folder), RUNNER_MOUNT))
        container = sandbox.engine.create_container(spec)
        try:
            _write_private(host_key_path(self.project), json.dumps({"container": container,
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

    def open_channel(self, timeout: float = 10.0) -> tuple[runner.Channel, RunnerIdentity]:
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
        with self._lock:
            self._runner = None

    def forget(self, identity: RunnerIdentity) -> None:
        with self._lock:
            if self._runner == identity:
                self._runner = None

    def discard(self, identity: RunnerIdentity) -> None:
        """End the session container of a runner that misbehaved: the next execution starts a fresh one."""
        with self._lock:
            self.forget(identity)
            try:
                self.sandbox.engine.remove(identity.container)
            except Exception:  # noqa: BLE001 - the next ensure() removes it by label
                pass

    def take_incidents(self) -> list[str]:
        with self._lock:
            found, self._incidents = self._incidents, []
            return found

    def call(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        identity = self.ensure()
        try:
            return call(self.project, identity, message, timeout)
        except RunnerMisbehaved:
            self.discard(identity)
            raise

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
        self.sock: runner.Channel | None = None
        self.identity: RunnerIdentity | None = None
        self.before: workspace.Snapshot = {}
        self.guard: DiskGuard | None = None
        self.incidents: list[str] = []
        self.deadline = 0.0
        self.settled = threading.Event()  # set once a misbehaving runner's container is gone (or never doomed)
        self.settled.set()

    def start(self) -> LiveExecution:
        sandbox = self.kernels.sandbox
        self.before = workspace.snapshot(sandbox.project.workspace, owner=sandbox.workspace_owner())
        try:
            self.sock, self.identity = self.kernels.open_channel()
            self.incidents = self.kernels.take_incidents()
            self.sock.send_json({"op": "exec", "session": self.session, "language": self.runtime.name,
                                 "code": self.code, "timeout": self.timeout, "python": sandbox.python_path()})
        except RunnerMisbehaved as exc:
            self.incidents = self.kernels.take_incidents()
            self._end_session(f"{exc}")
            return self.live
        except (OSError, EngineUnavailable) as exc:
            self.incidents = self.kernels.take_incidents()
            self.live.finish(None, error=f"the warm-session runner is unreachable: {one_line(str(exc))}")
            return self.live
        # The runner stops a cell at its timeout and kills it GRACE seconds later; past this the host stops
        # waiting (a runner that says nothing must not hang the execution).
        self.deadline = time.monotonic() + self.timeout + runner.GRACE + runner.SWEEP_SECONDS + \
            self.kernels.reply_slack
        threading.Thread(target=self._pump, name=f"warm-{self.execution_id}", daemon=True).start()
        self.guard = DiskGuard(sandbox.project.workspace, policy.parse_size(sandbox.settings.sandbox.disk_floor),
                               self._disk_low).start()
        return self.live

    def _pump(self) -> None:
        assert self.sock is not None
        outcome: dict[str, Any] | None = None
        problem = lost = None
        try:
            while outcome is None:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.sock.settimeout(remaining)
                kind, payload = self.sock.recv(MAX_REPLY_FRAME)
                if kind == b"O":
                    self.live.feed("stdout", payload)
                elif kind == b"E":
                    self.live.feed("stderr", payload)
                elif kind == b"J":
                    try:
                        answer = json.loads(payload)
                    except ValueError:
                        raise RunnerMisbehaved("the warm-session runner's answer is not JSON") from None
                    if not isinstance(answer, dict):
                        raise RunnerMisbehaved(f"the warm-session runner's answer is JSON but not an object "
                                               f"({type(answer).__name__})")
                    outcome = parse_outcome(answer)
                else:
                    raise RunnerMisbehaved(f"the warm-session runner sent a frame of unknown kind "
                                           f"{one_line(repr(kind))}")
        except TimeoutError:
            problem = (f"the warm-session runner said nothing for {self.timeout + runner.GRACE:g} s and more "
                       f"past the cell's start")
        except runner.ProtocolError as exc:
            problem = str(_keyed(exc))
        except RunnerMisbehaved as exc:
            problem = str(exc)
        except (OSError, EOFError) as exc:
            lost = f"lost the warm-session runner: {one_line(str(exc))}"
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
        if problem is not None or lost is not None:
            self._end_session(problem, lost)
            return
        assert outcome is not None
        exit_code = outcome.pop("exit_code", None)
        outcome.pop("done", None)
        if outcome.get("error"):
            outcome["error"] = one_line(outcome["error"])
        self.live.finish(exit_code, **outcome)

    def _end_session(self, problem: str | None, lost: str | None = None) -> None:
        """This execution ends without an exit code; the session container goes (the next starts fresh).
        The clock stops before the container is removed: the duration is the execution's, not the cleanup's."""
        assert problem is not None or lost is not None
        error = (f"{problem}: the warm session was ended and its container removed; the next execution "
                 f"starts a fresh one") if problem is not None else lost
        self.settled.clear()
        try:
            with self.kernels._lock:  # a next execution waits for the removal instead of finding the old one
                self.live.finish(None, error=error, state_lost=True)
                if self.identity is not None:
                    self.kernels.discard(self.identity)
        finally:
            self.settled.set()

    def _disk_low(self, _free: int) -> None:
        # The fill guard, as for one-off runs. An interrupt first; a cell still writing a moment later is
        # not given the usual grace (the disk is filling): its interpreter restarts at once.
        self._cancel()
        if not self.live.wait(0.3):
            try:
                self.kernels.call({"op": "restart", "session": self.session, "language": self.runtime.name})
            except (OSError, EOFError, ValueError, RunnerMisbehaved, EngineUnavailable):
                pass

    def _cancel(self) -> None:
        if self.sock is not None:
            try:
                self.sock.send_json({"op": "interrupt"})
            except OSError:
                pass

    def _finalize(self, live: LiveExecution) -> ExecutionResult:
        sandbox = self.kernels.sandbox
        self.settled.wait(30)  # the result (and its record) follows the removal it announces
        extra = live.extra
        notes = list(sandbox.notes()) + self.incidents
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
        state_lost = bool(extra.get("state_lost")) or bool(self.incidents)
        if state_lost:
            notes.append(f"session {self.session!r} was restarted: its variables are gone")
        elif extra.get("interrupted") or extra.get("timed_out"):
            notes.append("interrupted; the session's state was kept")
        left = extra.get("background_killed") or 0
        if left:
            notes.append(f"killed {left} background process{'es' if left != 1 else ''} the cell left running "
                         f"(a warm session keeps its interpreter, nothing else)")
        after = workspace.snapshot(sandbox.project.workspace)
        changes = workspace.diff(sandbox.project.workspace, self.before, after)
        return ExecutionResult(
            execution_id=self.execution_id, language=self.runtime.name, code=self.code,
            exit_code=live.exit_code, duration=live.duration, timed_out=bool(extra.get("timed_out")),
            killed_by=killed_by, stdout=live.records["stdout"].summary(),
            stderr=live.records["stderr"].summary(), files=changes, artifacts=workspace.artifacts(changes),
            session=self.session, limits_enforced=sandbox.engine.limits_enforced,
            state_lost=state_lost, notes=tuple(notes))


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
