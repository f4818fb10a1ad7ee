"""The warm-session interpreter programs (kernels/python.py, shell.sh, r.R), driven as the runner drives
them: a `Kernel` child process with its cell and reply pipes, here on the host's python3 and bash."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.container.conftest import FOLDER
from workbench.sandbox.container import interpreters


def run_cell(kernel: interpreters.Kernel, code: str, timeout: float = 20, interrupt_after: float | None = None):
    """(status, stdout, stderr) of one cell."""
    kernel.submit(code, f"test-{time.monotonic_ns()}")
    out = {kernel.proc.stdout.fileno(): b"", kernel.proc.stderr.fileno(): b""}
    reply = b""
    started = time.monotonic()
    while not reply.endswith(b"\n"):
        if interrupt_after is not None and time.monotonic() - started > interrupt_after:
            kernel.signal_group(signal.SIGINT)
            interrupt_after = None
        assert time.monotonic() - started < timeout, out
        readable, _, _ = select.select([*out, kernel.rep_r], [], [], 0.1)
        for fd in readable:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if fd == kernel.rep_r:
                assert data, "the interpreter died"
                reply += data
            else:
                out[fd] += data
    time.sleep(0.05)  # what the cell printed last may still be in flight on the other pipes
    for fd in out:
        try:
            out[fd] += os.read(fd, 65536)
        except BlockingIOError:
            pass
    return json.loads(reply)["status"], out[kernel.proc.stdout.fileno()], out[kernel.proc.stderr.fileno()]


@pytest.fixture
def python_kernel(tmp_path):
    kernel = interpreters.Kernel("t", "python", sys.executable, cwd=str(tmp_path))
    yield kernel
    kernel.stop()


def test_python_keeps_its_namespace_and_shows_the_last_expression(python_kernel):
    assert run_cell(python_kernel, "x = 20 + 22")[0] == 0
    assert run_cell(python_kernel, "x") == (0, b"42\n", b"")
    assert run_cell(python_kernel, "print(x, __name__)")[1] == b"42 __main__\n"


def test_python_statuses(python_kernel):
    status, _, err = run_cell(python_kernel, "1 / 0")
    assert status == 1 and b"ZeroDivisionError" in err
    assert run_cell(python_kernel, "raise SystemExit(3)")[0] == 3
    assert run_cell(python_kernel, "raise SystemExit('bye')")[0] == 1
    assert run_cell(python_kernel, "print('still here')")[1] == b"still here\n"


def test_python_imports_from_the_working_folder_as_a_prompt_does(python_kernel, tmp_path):
    (tmp_path / "helper_in_workspace.py").write_text("VALUE = 7\n")
    assert run_cell(python_kernel, "import helper_in_workspace\nhelper_in_workspace.VALUE") == (0, b"7\n", b"")
    assert run_cell(python_kernel, "import sys\nsys.argv")[1] == b"['<session>']\n"


def test_python_interrupt_ends_the_cell_and_keeps_the_state(python_kernel):
    run_cell(python_kernel, "kept = 1")
    status, _, err = run_cell(python_kernel, "import time\ntime.sleep(30)", interrupt_after=0.5)
    assert status == 130 and b"KeyboardInterrupt" in err
    assert run_cell(python_kernel, "kept")[1] == b"1\n"


def test_the_shell_kernel_parses_and_keeps_its_folder_and_variables(tmp_path):
    done = subprocess.run(["bash", "-n", str(FOLDER / "kernels" / "shell.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (tmp_path / "sub").mkdir()
    kernel = interpreters.Kernel("t", "shell", sys.executable, cwd=str(tmp_path))
    try:
        assert run_cell(kernel, "cd sub && export GREETING=hi")[0] == 0
        status, out, _ = run_cell(kernel, 'echo "$GREETING"; basename "$PWD"')
        assert (status, out) == (0, b"hi\nsub\n")
        assert run_cell(kernel, "false")[0] == 1
    finally:
        kernel.stop()
    assert not list((tmp_path).glob(".wb-cell-*"))


def test_the_kernel_programs_are_where_the_runner_looks():
    for language in ("python", "shell", "r"):
        argv, _ext = interpreters.kernel_command(language, "python3")
        assert os.path.isfile(interpreters.script_path(language))
        assert argv[0] in ("python3", "bash", "R")
    with pytest.raises(ValueError, match="no warm sessions"):
        interpreters.kernel_command("sql", "python3")
    assert interpreters.kernel_command("python", "py")[0][3] == (FOLDER / "kernels" / "python.py").read_text()
