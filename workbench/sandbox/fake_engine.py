"""`FakeEngine`: the `Engine` seam in-process, for testing sandbox logic without a container engine.

It isolates nothing: a "container" is a set of local processes, so it is for tests only (never reachable from
`connect`). What is real: each command runs as a local subprocess in a process group of its own, so output
streaming, exit codes (128+N for a signal N), timeouts and kills behave as on an engine. The container's
paths are mapped to host folders: each mount's target to its source, each tmpfs target to a fresh temporary
folder, the rest of the filesystem is the host's. The mapping rewrites the command's arguments, the
environment's values and the working folder wherever a mapped path appears as a whole path (`/workspace`,
`/workspace/x.py`, `PATH=/workspace/.venv/bin:/usr/bin`), which is enough for the commands tests give it.
The user is not changed (every process runs as the test's own user). Nothing is contained either, so a command
that signals every process it may (`kill -1`, as the one-off wrapper does inside a container to end what code
left behind) is refused: on the host it would reach every process of the test's user.

It records what it was asked: `created` (every `ContainerSpec`, in order), `removed` (container ids removed
through `remove`), `live()` (containers that still exist), so tests can check cleanup. tests/sandbox/conformance
holds it and `DockerEngine` to the same contract.
"""

from __future__ import annotations

import itertools
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from workbench.sandbox.spec import ContainerInfo, ContainerSpec, ContainerState, ExecHandle

IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"  # the PATH a container gets when its spec sets none
CHUNK = 65536
EVERY_PROCESS = re.compile(r"\bkill\b[^;&|\n]*\s-1(?!\w)")  # kill -1, kill -KILL -1, kill -s KILL -1 ...


class FakeEngineError(RuntimeError):
    """What the fake raises where an engine's API answers with an error (a conflict, a missing command)."""


def _exit_status(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Container:
    def __init__(self, id: str, spec: ContainerSpec, root: Path):
        self.id = id
        self.spec = spec
        self.root = root  # temporary folders (tmpfs targets) live here
        self.status = "created"
        self.main: subprocess.Popen | None = None
        self.execs: list[subprocess.Popen] = []
        self.exit_code: int | None = None
        self.output = bytearray()  # the main process's stdout and stderr, as `logs` replays them
        self.changed = threading.Condition()
        self.paths = self._mapping()

    def _mapping(self) -> tuple[re.Pattern[str] | None, dict[str, str]]:
        targets = {m.target.rstrip("/") or "/": m.source for m in self.spec.mounts}
        for i, target in enumerate(self.spec.tmpfs):
            folder = self.root / f"tmpfs-{i}"
            folder.mkdir(mode=0o700)
            targets[target.rstrip("/") or "/"] = str(folder)
        if not targets:
            return None, {}
        # One pass, longest first (/workspace/.conda before /workspace), whole paths only (not /workspacex):
        # a mapped source that holds another target (/tmp/pytest-1/ws) is never mapped again.
        alternatives = "|".join(re.escape(t) for t in sorted(targets, key=len, reverse=True))
        return re.compile(rf"(?<![\w.~-])(?:{alternatives})(?![\w.~-])"), targets

    def host_path(self, text: str) -> str:
        pattern, targets = self.paths
        return pattern.sub(lambda match: targets[match.group(0)], text) if pattern is not None else text

    def popen(self, argv: Iterable[str], env: dict[str, str], workdir: str, merged: bool) -> subprocess.Popen:
        argv = list(argv)
        if any(EVERY_PROCESS.search(a) for a in argv):
            raise FakeEngineError("the fake engine contains nothing: a command that signals every process "
                                  "(kill -1) would reach the host's")
        environment = {"PATH": IMAGE_PATH, **{k: self.host_path(v) for k, v in env.items()}}
        cwd = self.host_path(workdir) if workdir else str(self.root)
        try:
            return subprocess.Popen([self.host_path(a) for a in argv], cwd=cwd, env=environment,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT if merged else subprocess.PIPE,
                                    start_new_session=True)  # its own group: a kill reaches what it forks
        except OSError as exc:  # as an engine's start answers "executable file not found"
            raise FakeEngineError(f"cannot run {list(argv)[:1]} in container {self.id[:12]}: {exc}") from exc

    def running(self) -> bool:
        return self.status == "running"


class FakeEngine:
    """An in-process `Engine` (see the module's docstring). `images`: the image refs `image_exists` knows."""

    endpoint = "fake://in-process"
    version = "fake 1"
    selinux = False
    runtime = ""

    def __init__(self, images: Iterable[str] = (), *, rootless: bool = True, is_podman: bool = True,
                 limits_enforced: bool = False):
        """The defaults describe rootless Podman (code runs as you, keep-id), whose limits this fake, like
        rootless Podman on cgroup v1, does not enforce."""
        self.images = set(images)
        self.rootless, self.is_podman, self.limits_enforced = rootless, is_podman, limits_enforced
        self.created: list[ContainerSpec] = []
        self.removed: list[str] = []
        self.commits: list[tuple[str, str, str]] = []
        self._containers: dict[str, _Container] = {}
        self._execs: dict[str, tuple[_Container, list[str], dict[str, str], str]] = {}
        self._exec_processes: dict[str, subprocess.Popen] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False

    # --- what tests look at ------------------------------------------------------------------------
    def live(self) -> list[str]:
        """The ids of containers that still exist."""
        with self._lock:
            return list(self._containers)

    def spec_of(self, container: str) -> ContainerSpec:
        return self._get(container).spec

    # --- images ------------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return ref in self.images

    def commit(self, container: str, repository: str, tag: str, changes: list[str] | None = None) -> str:
        self._get(container)
        self.images.add(f"{repository}:{tag}")
        self.commits.append((container, repository, tag))
        return f"sha256:fake-{repository}-{tag}"

    def import_image(self, tarball: Path, repository: str, tag: str, changes: list[str]) -> None:
        if not Path(tarball).is_file():
            raise FakeEngineError(f"importing {tarball} failed: no such file")
        self.images.add(f"{repository}:{tag}")

    def remove_image(self, ref: str) -> None:
        self.images.discard(ref)

    # --- containers --------------------------------------------------------------------------------
    def _get(self, container: str) -> _Container:
        with self._lock:
            found = self._containers.get(container)
        if found is None:
            raise FakeEngineError(f"no such container: {container}")
        return found

    def create_container(self, spec: ContainerSpec) -> str:
        if not isinstance(spec, ContainerSpec):
            raise TypeError(f"create_container takes a ContainerSpec, not {type(spec).__name__}")
        if spec.image not in self.images:
            raise FakeEngineError(f"no such image: {spec.image}")
        container = f"{next(self._ids):04d}" + os.urandom(30).hex()
        root = Path(tempfile.mkdtemp(prefix="wb-fake-container-"))
        with self._lock:
            self._containers[container] = _Container(container, spec, root)
            self.created.append(spec)
        return container

    def start(self, container: str) -> None:
        box = self._get(container)
        if box.running():
            return
        command = list(box.spec.command) or ["sleep", "infinity"]  # no command: it idles until stopped
        box.main = box.popen(command, dict(box.spec.env), box.spec.workdir, merged=True)
        box.status, box.exit_code = "running", None
        threading.Thread(target=self._follow, args=(box, box.main), daemon=True,
                         name=f"fake-engine-{container[:8]}").start()

    def _follow(self, box: _Container, main: subprocess.Popen) -> None:
        """Collect the main process's output; when it ends, the container ends with it (and its execs)."""
        assert main.stdout is not None
        while chunk := os.read(main.stdout.fileno(), CHUNK):
            with box.changed:
                box.output += chunk
                box.changed.notify_all()
        main.wait()
        main.stdout.close()
        for process in box.execs:
            _kill_group(process)
        with box.changed:
            box.status, box.exit_code = "exited", _exit_status(main.returncode)
            box.changed.notify_all()
        if box.spec.auto_remove:
            self._discard(box)

    def state(self, container: str) -> ContainerState | None:
        with self._lock:
            box = self._containers.get(container)
        if box is None:
            return None
        running = box.running()
        return ContainerState(running=running, status=box.status, exit_code=box.exit_code,
                              pid=box.main.pid if running and box.main is not None else None)

    def stop(self, container: str, timeout: int = 2) -> None:
        with self._lock:
            box = self._containers.get(container)
        if box is None or not box.running() or box.main is None:
            return
        _kill_group(box.main, signal.SIGTERM)
        with box.changed:
            if not box.changed.wait_for(lambda: not box.running(), timeout=timeout):
                _kill_group(box.main)
                box.changed.wait_for(lambda: not box.running(), timeout=10)

    def remove(self, container: str, force: bool = True) -> None:
        with self._lock:
            box = self._containers.get(container)
        if box is None:
            return
        if box.running() and not force:
            raise FakeEngineError(f"container {container[:12]} is running: stop it first, or remove with force")
        if box.main is not None and box.running():
            _kill_group(box.main)
            with box.changed:
                box.changed.wait_for(lambda: not box.running(), timeout=10)
        self._discard(box)
        self.removed.append(container)

    def _discard(self, box: _Container) -> None:
        for process in box.execs:
            _kill_group(process)
        with self._lock:
            self._containers.pop(box.id, None)
        shutil.rmtree(box.root, ignore_errors=True)

    def logs(self, container: str, follow: bool = True) -> Iterator[bytes]:
        box = self._get(container)
        if not follow:
            with box.changed:
                return iter([bytes(box.output)])
        return self._follow_log(box)

    def _follow_log(self, box) -> Iterator[bytes]:
        sent = 0
        while True:
            with box.changed:
                box.changed.wait_for(lambda sent=sent: len(box.output) > sent or not box.running(), timeout=1)
                chunk, ended = bytes(box.output[sent:]), not box.running()
            if chunk:
                sent += len(chunk)
                yield chunk
            elif ended:
                return

    def wait(self, container: str, timeout: float | None = None) -> int | None:
        box = self._get(container)
        with box.changed:
            if not box.changed.wait_for(lambda: box.status == "exited", timeout=timeout):
                raise TimeoutError(f"container {container[:12]} still running after {timeout} s")
            return box.exit_code

    def list_containers(self, labels: dict[str, str], all: bool = True) -> list[ContainerInfo]:
        with self._lock:
            boxes = list(self._containers.values())
        return [ContainerInfo(box.id, box.status, box.spec.labels) for box in boxes
                if (all or box.running())
                and all_labels_match(box.spec.labels, labels)]

    # --- exec --------------------------------------------------------------------------------------
    def exec_create(self, container: str, cmd: list[str], *, user: str, env: dict[str, str],
                    workdir: str) -> ExecHandle:
        box = self._get(container)
        if not box.running():
            raise FakeEngineError(f"container {container[:12]} is not running")
        handle = ExecHandle(f"exec-{next(self._ids)}", container)
        self._execs[handle.id] = (box, list(cmd), {**box.spec.env, **env}, workdir or box.spec.workdir)
        return handle

    def exec_stream(self, handle: ExecHandle) -> Iterator[tuple[bytes | None, bytes | None]]:
        box, cmd, env, workdir = self._execs[handle.id]
        process = box.popen(cmd, env, workdir, merged=False)
        box.execs.append(process)
        self._exec_processes[handle.id] = process
        return self._pump(process)

    @staticmethod
    def _pump(process: subprocess.Popen) -> Iterator[tuple[bytes | None, bytes | None]]:
        """Each chunk as it is written, stdout and stderr apart, in the order they were read."""
        assert process.stdout is not None and process.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, 0)
            selector.register(process.stderr, selectors.EVENT_READ, 1)
            while selector.get_map():
                for key, _ in selector.select():
                    chunk = os.read(key.fd, CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    yield (chunk, None) if key.data == 0 else (None, chunk)
        process.stdout.close()
        process.stderr.close()
        process.wait()

    def exec_exit_code(self, handle: ExecHandle) -> int | None:
        process = self._exec_processes.get(handle.id)
        if process is None:
            return None
        if process.poll() is None:  # streamed to its end, the process may still be exiting
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                return None
        return _exit_status(process.returncode)

    def close(self) -> None:
        self.closed = True

    def shutdown(self) -> None:
        """Remove every container left (a test's own cleanup, after it has checked what was left)."""
        for container in self.live():
            self.remove(container)
        deadline = time.monotonic() + 5
        while self._exec_processes and time.monotonic() < deadline:
            if all(p.poll() is not None for p in self._exec_processes.values()):
                break
            time.sleep(0.02)


def all_labels_match(have: dict[str, str] | object, wanted: dict[str, str]) -> bool:
    """Every label in `wanted` is on the container (an empty value: with any value), as the engines filter."""
    labels = dict(have)  # type: ignore[call-overload]
    return all(key in labels and (not value or labels[key] == value) for key, value in wanted.items())
