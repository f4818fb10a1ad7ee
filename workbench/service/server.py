"""The project's sandbox service: one process per project, started detached by the first `workbench exec`
(see `workbench.service.client`), serving calls over a Unix socket in its private folder
(`workbench.service.wire`), one thread per call.

Each call is exactly the in-process command (`workbench.service.execute.run_exec`): the project and its
settings are read afresh, its trust checked (a restricted project is sent back to run in-process, where
the warnings and the restrictions apply as always), and a work session opened with the caller's actor.
What the service keeps between calls is only what costs time and means nothing to the record: the imports,
the engine connection, the idle one-off container (`workbench.service.pool`).

It is stale, and ends itself after telling the caller so, when the caller runs another Workbench (version,
package folder, interpreter), in another environment (`wire.env_digest`), or when its own source files
changed since it loaded them. It also ends after `WORKBENCH_SERVICE_IDLE` seconds (default 300) without a
call, on SIGTERM, and on `workbench service stop`; then it removes its idle container and its socket.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import workbench
from workbench import trust
from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.inert import one_line, visible
from workbench.project import Project
from workbench.sandbox import Sandbox
from workbench.sandbox.engine import connect
from workbench.sandbox.execution import LiveExecution
from workbench.service import wire
from workbench.service.execute import run_exec
from workbench.service.pool import Pool

log = logging.getLogger("workbench.service")

IDLE_SECONDS = 300.0
INTERNAL_EXIT = 70
REQUEST_TIMEOUT = 30.0  # for the caller's request to arrive whole, once connected


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("WORKBENCH_SERVICE_IDLE", IDLE_SECONDS)))
    except ValueError:
        return IDLE_SECONDS


def mtime_of(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def source_times() -> dict[str, int]:
    """The modification time of every Workbench module this process has loaded (at its start: what a
    call imports later is read from disk then, and so is current)."""
    package = os.path.dirname(workbench.__file__ or "")
    return {path: mtime_of(path) for module in list(sys.modules.values())
            if (path := getattr(module, "__file__", None)) and path.startswith(package)}


class FrameOutput:
    """`execute.Output` over the connection. A caller that went away cancels the execution (as Ctrl-C)."""

    def __init__(self, frames: wire.Frames, gone: threading.Event):
        self.frames, self.gone = frames, gone
        self.lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes) -> None:
        if self.gone.is_set():
            return
        with self.lock:
            try:
                self.frames.send(kind, payload)
            except OSError:
                self.gone.set()

    def stdout(self, data: bytes) -> None:
        self.send(b"O", data)

    def stderr(self, data: bytes) -> None:
        self.send(b"E", data)

    def say(self, text: str) -> None:
        self.send(b"S", visible(text).encode("utf-8", "replace"))


class Service:
    def __init__(self, root: Path, folder: str, env: str):
        self.root, self.folder, self.env = root, folder, env
        self.idle = idle_seconds()
        self.pools: dict[str, Pool] = {}
        self.lock = threading.Lock()
        self.active = 0
        self.last = time.monotonic()
        self.stopping = threading.Event()
        self.running: set[LiveExecution] = set()
        self.listener: socket.socket | None = None
        self.inode: int | None = None
        self.sources = source_times()

    # --- the socket -------------------------------------------------------------------------------
    def bind(self) -> None:
        """Listen on a fresh socket, then move it into place (callers never meet one that is not ready)."""
        path = Path(wire.address(self.folder))
        temporary = os.path.join(self.folder, f"{wire.SOCKET_NAME}.{os.getpid()}")
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            listener.bind(temporary)
        finally:
            os.umask(old)
        listener.listen(64)
        os.rename(temporary, path)
        self.inode = os.lstat(path).st_ino
        listener.settimeout(1.0)
        self.listener = listener

    def stop_accepting(self) -> None:
        """No new calls: the socket goes (when it is still ours), so the next caller starts a fresh service."""
        self.stopping.set()
        path = os.path.join(self.folder, wire.SOCKET_NAME)
        try:
            if os.lstat(path).st_ino == self.inode:
                os.unlink(path)
        except OSError:
            pass

    def serve(self) -> None:
        self.bind()
        assert self.listener is not None
        log.info("serving %s (pid %d, idle %g s)", self.root, os.getpid(), self.idle)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                with self.lock:
                    idle = self.active == 0 and time.monotonic() - self.last > self.idle
                if idle:
                    log.info("idle for %g s: ending", self.idle)
                    self.stop_accepting()
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                raise
            with self.lock:
                self.active += 1
                self.last = time.monotonic()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        self.shutdown()

    def shutdown(self) -> None:
        self.stop_accepting()
        if self.listener is not None:
            self.listener.close()
        for execution in list(self.running):
            execution.cancel()
        while True:
            with self.lock:
                if self.active == 0:
                    break
            time.sleep(0.05)
        for pool in list(self.pools.values()):
            pool.close()
        log.info("ended")

    # --- one call ---------------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        try:
            _pid, uid, _gid = wire.peer(conn)
            if uid != os.getuid():  # the folder is 0700 and the socket 0600: only root gets this far
                log.warning("refused a caller with uid %d", uid)
                return
            conn.settimeout(REQUEST_TIMEOUT)
            frames = wire.Frames(conn)
            frame = frames.recv()
            if frame is None:
                return
            kind, payload = frame
            if kind == b"Q":
                self.stop_accepting()
                frames.send(b"X", wire.fields(["0", None]))
                return
            if kind != b"R":
                return
            try:
                values = wire.unfields(payload, len(wire.REQUEST))
            except ValueError:  # a caller of another version: it starts a service that speaks its protocol
                self.stop_accepting()
                frames.send(b"T", b"the caller speaks another protocol")
                return
            request: dict[str, Any] = dict(zip(wire.REQUEST, values, strict=True))
            conn.settimeout(None)
            self.call(frames, request)
        except Exception:  # noqa: BLE001 - one call's failure never ends the service
            log.exception("a call failed")
        finally:
            conn.close()
            with self.lock:
                self.active -= 1
                self.last = time.monotonic()

    def stale(self, request: dict[str, Any]) -> str | None:
        if (request.get("version"), request.get("package"), request.get("python")) != (
                workbench.__version__, os.path.dirname(workbench.__file__ or ""), sys.executable):
            return "the caller runs another Workbench"
        if request.get("env") != self.env:
            return "the caller's environment differs"
        if any(mtime_of(path) != mtime for path, mtime in self.sources.items()):
            return "Workbench's code changed since the service started"
        return None

    def call(self, frames: wire.Frames, request: dict[str, Any]) -> None:
        reason = self.stale(request)
        if reason is not None:
            log.info("stale (%s): ending", reason)
            self.stop_accepting()
            frames.send(b"T", reason.encode())
            return
        prepared = self.prepare(request)
        if isinstance(prepared, str):
            frames.send(b"F", prepared.encode("utf-8", "replace"))
            return
        project, settings = prepared
        gone = threading.Event()
        output = FrameOutput(frames, gone)
        live: list[LiveExecution] = []

        def started(execution: LiveExecution) -> None:
            live.append(execution)
            with self.lock:
                self.running.add(execution)
            if gone.is_set():
                execution.cancel()

        threading.Thread(target=self.listen, args=(frames, gone, live), daemon=True).start()
        frames.send(b"A")
        try:
            timeout = request["timeout"]
            code = run_exec(project, settings, request["language"], request["code"],
                            timeout=float(timeout) if timeout is not None else None, session=request["session"],
                            output=output, open_sandbox=self.open_sandbox, started=started)
            end = [str(code), None]
        except WorkbenchError as exc:
            end = [str(exc.exit_code), f"workbench: error: {one_line(exc.one_line())}"]
        except Exception as exc:  # noqa: BLE001 - a bug: one line, as `workbench.cli.main` prints it
            log.exception("the execution failed")
            end = [str(INTERNAL_EXIT), f"workbench: internal error: {type(exc).__name__}: {one_line(exc)} "
                                       "(re-run with --debug for the traceback)"]
        finally:
            with self.lock:
                self.running.difference_update(live)
        output.send(b"X", wire.fields(end))

    def prepare(self, request: dict[str, Any]) -> tuple[Project, Settings] | str:
        """The project and its settings as the in-process command reads them, or why it must run there
        (anything it would print before running: not trusted, an unreadable config, a bad language)."""
        from workbench import languages

        if str(Path(request["root"] or "")) != str(self.root):
            return "another project"
        try:
            project = Project.open(self.root)
            state = trust.state(project)
            if state.problem or not state.trusted:
                return "the project is restricted"
            runtime = request.get("runtime")
            settings = project.settings({"sandbox": {"runtime": runtime}} if runtime else None)
            languages.get(str(request.get("language")), settings)
        except WorkbenchError as exc:
            return exc.one_line()
        if not isinstance(request.get("code"), str):
            return "no code"
        return project, settings

    def listen(self, frames: wire.Frames, gone: threading.Event, live: list[LiveExecution]) -> None:
        """The caller's cancel (Ctrl-C), or its going away: either stops an execution still running."""
        try:
            while True:
                frame = frames.recv()
                if frame is None:
                    gone.set()
                    break
                if frame[0] == b"C":
                    break
        except (OSError, EOFError, ValueError):
            gone.set()
        for execution in live:
            if not execution.wait(0):
                execution.cancel()

    def open_sandbox(self, project: Project, **kwargs: Any) -> Sandbox:
        """A `workbench.session.SandboxOpener`: the pool for the settings' engine (connected on first use,
        inside the work session, so an unreachable engine is recorded as in-process)."""
        settings: Settings = kwargs["settings"]
        engine_key = json.dumps([settings.engine.model_dump(mode="json"), settings.sandbox.runtime], sort_keys=True)
        with self.lock:
            pool = self.pools.get(engine_key)
        if pool is None:
            pool = Pool(connect(settings))
            with self.lock:
                pool = self.pools.setdefault(engine_key, pool)
        return pool.open_sandbox(project, **kwargs)


def main(argv: list[str]) -> None:
    root, folder, env = Path(argv[0]), argv[1], argv[2]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    wire.service_dir(argv[0])  # the folder is still ours and private
    # What each call needs, loaded before the first one (the caller waits for the socket, not for these).
    from workbench import audit  # noqa: F401
    from workbench.sandbox import environment, kernels, oneoff, warm  # noqa: F401

    service = Service(root, folder, env)
    signal.signal(signal.SIGTERM, lambda *_: service.stop_accepting())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    service.serve()
