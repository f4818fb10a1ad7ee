"""Code that runs inside the sandbox's containers, kept here as real files (never as strings in host modules).

    runner.py         PID 1 of every sandbox container; the warm-session server (`--serve`)
    protocol.py       the runner's wire protocol (frames, the session key, the peer check); the host
                      imports it as `workbench.sandbox.container.protocol`
    interpreters.py   the runner's live interpreters, and the processes around them
    kernels/          the interpreter programs: python.py, shell.sh, r.R
    relay.py          the install container's relay to the egress proxy; the runner's to the network
                      policy proxy (`--relay`)
    conda_install.py  the conda install (workbench.sandbox.managers.conda runs it)

Everything here is standard library only, for the image's python3 (or bash, or R). The runner and what it
needs are copied into each project's read-only code folder (/opt/workbench inside) by `install`, keeping
their layout; the relay and the conda installer travel as the text of a `python3 -I -c` argument
(`source`), so an install container needs no code folder. This `__init__` is the host's handle on the
folder: it is never copied in.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from functools import cache
from importlib import resources
from pathlib import Path

# The image's own interpreter, by path, runs all of this: the engine resolves a bare command through the
# container's PATH, which reaches into the workspace (/workspace/.venv/bin), where code of an earlier
# execution could have planted a `python3` of its own (and would then be PID 1, holding the session key).
# The same holds for the programs that set an execution's limits and timeout before its code runs: one
# planted in the workspace would drop them for every later execution.
PYTHON = "/usr/bin/python3"
BY_PATH = {"prlimit": "/usr/bin/prlimit", "timeout": "/usr/bin/timeout"}
RUNNER_FILES = ("runner.py", "protocol.py", "interpreters.py", "kernels/python.py", "kernels/shell.sh",
                "kernels/r.R", "relay.py")


@cache
def source_bytes(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def source(name: str) -> str:
    """The text of one file of this folder (e.g. "relay.py")."""
    return source_bytes(name).decode("utf-8")


def digest() -> str:
    """SHA-256 over the runner's files (names and contents): a container started from other files differs."""
    h = hashlib.sha256()
    for name in RUNNER_FILES:
        data = source_bytes(name)
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def by_path(argv: list[str]) -> list[str]:
    """`argv` with its program named by its path in the image where it is one of BY_PATH."""
    return [BY_PATH.get(argv[0], argv[0]), *argv[1:]] if argv else argv


def install(target: Path) -> Path:
    """Copy the runner's files into `target` (the folder mounted read-only at /opt/workbench), each
    replaced only when it differs, never written through a link planted there. Returns runner.py's path."""
    for name in RUNNER_FILES:
        path = target / name
        if path.parent != target:
            _real_folder(path.parent)
        data = source_bytes(name)
        try:
            st = os.lstat(path)
            same = stat.S_ISREG(st.st_mode) and path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, data)
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    return target / "runner.py"


def _real_folder(folder: Path) -> None:
    """`folder` as a real folder, mode 0755: whatever else is at its name (a link, a file) goes first."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(folder)
        st = None
    if st is None:
        os.mkdir(folder, 0o755)
    os.chmod(folder, 0o755)
