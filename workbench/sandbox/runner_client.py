"""The host's end of the warm-session runner's socket: who must answer, the key, one checked exchange.

The runner cannot be impersonated. Code in the session container runs as the same uid as the runner, so
the channel is protected by who may reach it, by a key only the two ends hold, and by who answers, not by
file permissions (workbench/sandbox/container/protocol.py and runner.py have the runner's side):
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
Only the exit code and the flags (timed out, interrupted, killed by, state lost, background processes
killed) come from the authenticated runner, and `parse_outcome` checks each for type; the host measures
the rest itself (workbench.sandbox.warm).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.inert import one_line
from workbench.project import Project
from workbench.sandbox import policy
from workbench.sandbox.container import protocol

if TYPE_CHECKING:
    from workbench.sandbox.engine import Engine

RUNNER_DIR = "runner"  # under the project's .workbench/: private to Workbench, mounted only at RUNNER_MOUNT
RUNNER_MOUNT = "/run/workbench"
SOCKET_NAME = "runner.sock"
HOST_KEY_FILE = "runner.key"  # under .workbench/: {"container": id, "key": hex} of the running session container
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
    return key if key is not None and len(key) == protocol.KEY_SIZE else None


def write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
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


def connect(project: Project, expected: RunnerIdentity, timeout: float = 5.0) -> protocol.Channel:
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
            pid = protocol.peer_pid(sock)
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
        return protocol.Channel.open(sock, expected.key)
    except BaseException:
        sock.close()
        raise


def keyed_problem(exc: protocol.ProtocolError) -> RunnerMisbehaved:
    if isinstance(exc, protocol.Forged):
        return RunnerMisbehaved("a reply on the runner's socket does not carry the session's key: someone "
                                "other than the runner answered")
    return RunnerMisbehaved(f"the warm-session runner broke the framing: {exc}")


def call(project: Project, expected: RunnerIdentity, message: dict[str, Any], timeout: float = 10.0
         ) -> dict[str, Any]:
    """One request, one JSON answer, from the authenticated protocol."""
    with connect(project, expected, timeout) as channel:
        channel.send_json(message)
        try:
            return channel.recv_object(MAX_REPLY_FRAME)
        except protocol.ProtocolError as exc:
            raise keyed_problem(exc) from None


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
