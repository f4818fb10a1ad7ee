"""Inside the container: the live interpreters the runner keeps, and the processes around them (what a
sweep spares, what PID 1 reaps).

One `Kernel` per (session, language): a child process in its own process group, its stdout/stderr on
pipes the runner forwards as they arrive, and a control pipe pair on which it receives a cell and answers
its exit status. Python keeps its globals, shell (bash) its working folder and variables, R its global
environment. The interpreter programs are the files in kernels/ beside this one (python.py, shell.sh,
r.R). Standard library only (the image's python3).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
SCRIPTS = {"python": "python.py", "shell": "shell.sh", "r": "r.R"}


def script_path(language: str) -> str:
    if language not in SCRIPTS:
        raise ValueError(f"no warm sessions for {language}")
    return os.path.join(KERNELS, SCRIPTS[language])


# The workspace's conda prefix (policy.CONDA_PREFIX on the host): an interpreter started once it exists sees it
# activated, as a one-off execution does (policy.conda_activated says the same on the host side).
CONDA_PREFIX = "/workspace/.conda"


def conda_activated(env: dict[str, str]) -> dict[str, str]:
    if not os.path.isdir(f"{CONDA_PREFIX}/conda-meta"):
        return env
    path = [p for p in env.get("PATH", "").split(":") if p and p != f"{CONDA_PREFIX}/bin"]
    at = 1 if path[:1] == ["/workspace/.venv/bin"] else 0
    return {**env, "PATH": ":".join([*path[:at], f"{CONDA_PREFIX}/bin", *path[at:]]),
            "CONDA_PREFIX": CONDA_PREFIX, "CONDA_DEFAULT_ENV": CONDA_PREFIX, "CONDA_SHLVL": "1"}


def kernel_command(language: str, python: str) -> tuple[list[str], str | None]:
    """(argv, extension of cell files or None when cells travel inline). Python and bash get their
    program inline (`-c`), as a prompt would run it: Python's import path starts at the working folder."""
    path = script_path(language)
    if language == "r":
        return ["R", "--no-save", "--no-restore", "--quiet", "--slave", "-f", path], ".R"
    with open(path, encoding="utf-8") as handle:
        program = handle.read()
    if language == "python":
        return [python, "-u", "-c", program], None
    return ["bash", "--noprofile", "--norc", "-c", program], ".sh"


def oom_kills() -> int:
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as handle:
                for line in handle:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return -1


class Kernel:
    """One live interpreter."""

    def __init__(self, session: str, language: str, python: str, cwd: str = "/workspace",
                 argv: list[str] | None = None, extension: str | None = None):
        """`argv`: a configured interpreter ([languages.NAME] warm) given cells as files ending in `extension`;
        None: the runner's own kernel for `language`."""
        self.session, self.language, self.python = session, language, python
        self.executions = 0
        self.last_used = time.monotonic()
        self.lock = threading.Lock()
        self.running = False  # a cell is in progress: a sweep spares this interpreter's process tree
        self.closed = False
        if argv is not None and not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
                                     and isinstance(extension, str)):
            raise ValueError(f"a bad interpreter command for {language}")
        argv, self.cell_ext = (list(argv), extension) if argv else kernel_command(language, python)
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        env = conda_activated(dict(os.environ, WB_IN=str(req_r), WB_OUT=str(rep_w)))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=(req_r, rep_w), env=env,
                                     cwd=cwd, start_new_session=True)
        os.close(req_r)
        os.close(rep_w)
        for fd in (self.proc.stdout.fileno(), self.proc.stderr.fileno(), self.rep_r):
            os.set_blocking(fd, False)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        self.closed = True
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self.req_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        for pipe in (self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass

    def submit(self, code: str, cell_id: str) -> None:
        if self.cell_ext is None:
            line = json.dumps({"code": code}) + "\n"
        else:
            # /tmp is shared with user code: a name it cannot guess, created here (a planted symlink or
            # FIFO under a guessable name would redirect or block the runner).
            path = f"/tmp/.wb-cell-{cell_id}-{secrets.token_hex(8)}{self.cell_ext}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(fd, "w", encoding="utf-8") as handle:
                handle.write(code)
            line = path + "\n"
        os.write(self.req_w, line.encode())


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, process group, state letter) for every process this PID namespace shows."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            table[int(name)] = (int(fields[1]), int(fields[2]), fields[0].decode())
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return table


def spared(kernels, table: dict[int, tuple[int, int, str]]) -> set[int]:
    """The pids a sweep must not kill: PID 1, this runner, the live interpreters, and the process tree
    (process group and descendants) of an interpreter whose cell is still running."""
    spare = {1, os.getpid()}
    roots = []
    for kernel in kernels:
        if kernel.alive:
            spare.add(kernel.proc.pid)
            if kernel.running:
                roots.append(kernel.proc.pid)
    if roots:
        children: dict[int, list[int]] = {}
        for pid, (ppid, pgrp, _state) in table.items():
            children.setdefault(ppid, []).append(pid)
            if pgrp in roots:
                spare.add(pid)
        todo, seen = list(roots), set(roots)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    spare.add(child)
                    todo.append(child)
    return spare


def reap(stop: threading.Event, spare=lambda: set()) -> None:
    """Reap every exited child except those in `spare()` (subprocess reaps its own)."""
    while not stop.is_set():
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is None:
            time.sleep(0.2)
            continue
        if info.si_pid in spare():
            time.sleep(0.05)
            continue
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            pass
