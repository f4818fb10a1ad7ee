"""Warm sessions: state kept between executions (and between processes), interrupts, restarts, artifacts."""

from __future__ import annotations

import subprocess

import pytest

from tests.sandbox.conftest import run

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def warm(sandbox):
    yield sandbox
    from workbench.sandbox.kernels import stop_sessions

    stop_sessions(sandbox.project)


def test_python_state_persists(warm):
    first, _ = run(warm, "python", "import math\nx = 20 + 22", session="p1")
    assert first.ok and first.session == "p1"
    second, _ = run(warm, "python", "print(x, math.pi > 3)", session="p1")
    assert second.stdout.kept == b"42 True\n"
    other, _ = run(warm, "python", "print(x)", session="p2")  # sessions do not share state
    assert other.exit_code == 1 and b"NameError" in other.stderr.kept


def test_last_expression_is_shown(warm):
    result, _ = run(warm, "python", "y = 6\ny * 7", session="p1")
    assert result.stdout.kept == b"42\n"


def test_an_exception_fails_the_execution_but_keeps_the_session(warm):
    run(warm, "python", "kept = 'yes'", session="p3")
    failed, _ = run(warm, "python", "1 / 0", session="p3")
    assert failed.exit_code == 1 and b"ZeroDivisionError" in failed.stderr.kept and not failed.state_lost
    after, _ = run(warm, "python", "print(kept)", session="p3")
    assert after.stdout.kept == b"yes\n"


def test_shell_keeps_folder_and_exports(warm):
    run(warm, "shell", "mkdir -p /workspace/sub && cd /workspace/sub && export GREETING=hi", session="sh1")
    result, _ = run(warm, "shell", 'pwd; echo "$GREETING"', session="sh1")
    assert result.stdout.kept == b"/workspace/sub\nhi\n"
    failing, _ = run(warm, "shell", "false", session="sh1")
    assert failing.exit_code == 1


def test_r_keeps_its_environment(warm):
    run(warm, "r", "z <- 40 + 2", session="r1")
    result, _ = run(warm, "r", "cat(z, '\\n')", session="r1")
    assert result.ok and b"42" in result.stdout.kept


def test_warm_output_streams_live(warm):
    execution = warm.execute("python", "import time\nprint('a', flush=True)\ntime.sleep(1)\nprint('b')",
                             session="p1")
    chunks = list(execution)
    assert execution.result().ok
    first = next(c for c in chunks if b"a" in c.data)
    second = next(c for c in chunks if b"b" in c.data)
    assert second.at - first.at >= 0.8


def test_timeout_interrupts_and_keeps_state_when_the_cell_stops(warm):
    run(warm, "python", "survivor = 1", session="t1")
    result, _ = run(warm, "python", "while True: pass", session="t1", timeout=1)
    assert result.timed_out and result.killed_by == "timeout" and not result.state_lost
    assert b"KeyboardInterrupt" in result.stderr.kept
    after, _ = run(warm, "python", "print(survivor)", session="t1")
    assert after.stdout.kept == b"1\n"


def test_a_cell_that_ignores_sigint_is_killed_and_the_state_lost(warm):
    run(warm, "python", "survivor = 1", session="t2")
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    result, _ = run(warm, "python", code, session="t2", timeout=1)
    assert result.timed_out and result.state_lost
    assert any("restarted" in note for note in result.notes)
    after, _ = run(warm, "python", "print('fresh'); print(survivor)", session="t2")
    assert after.stdout.kept == b"fresh\n" and b"NameError" in after.stderr.kept


def test_cancel_interrupts_a_warm_cell(warm):
    execution = warm.execute("python", "import time\nprint('go', flush=True)\ntime.sleep(60)", session="c1")
    for chunk in execution:
        if b"go" in chunk.data:
            execution.cancel()
    result = execution.result()
    assert result.killed_by == "user" and result.duration < 10


def test_oom_in_a_session_restarts_it(engine_ready, module_project):
    from tests.sandbox.conftest import make_settings
    from workbench.sandbox import Sandbox
    from workbench.sandbox.kernels import stop_sessions

    with Sandbox.open(module_project, settings=make_settings(memory="256m")) as box:
        try:
            run(box, "python", "before = 1", session="m1")
            result, _ = run(box, "python", "x = b'x' * (1024 ** 3)", session="m1")
            assert result.state_lost or b"MemoryError" in result.stderr.kept
            if box.info.limits_enforced:
                assert result.killed_by == "oom" and result.exit_code == 137
            after, _ = run(box, "python", "print('alive')", session="m1")
            assert after.stdout.kept == b"alive\n"
        finally:
            stop_sessions(module_project)


def test_exit_in_a_session_reports_and_restarts(warm):
    result, _ = run(warm, "python", "import os; os._exit(3)", session="e1")
    assert result.exit_code == 3 and result.state_lost
    assert run(warm, "python", "print(1)", session="e1")[0].stdout.kept == b"1\n"


def test_list_and_restart(warm):
    from workbench.sandbox.kernels import list_sessions, restart_session

    run(warm, "python", "k = 5", session="lr")
    names = {(row["name"], row["language"]) for row in list_sessions(warm.project)}
    assert ("lr", "python") in names
    assert restart_session(warm.project, "lr") == 1
    after, _ = run(warm, "python", "print(k)", session="lr")
    assert b"NameError" in after.stderr.kept


def test_figures_are_artifacts(warm):
    code = ("import base64\nopen('/workspace/fig.svg', 'w').write('<svg xmlns=\"http://www.w3.org/2000/svg\"/>')")
    result, _ = run(warm, "python", code, session="p1")
    assert [(a.path, a.mime) for a in result.artifacts] == [("fig.svg", "image/svg+xml")]
    r_plot, _ = run(warm, "r", "pdf('/workspace/plot.pdf'); plot(1:10); invisible(dev.off())", session="r1")
    assert r_plot.ok, r_plot.stderr.text()
    assert [(a.path, a.mime) for a in r_plot.artifacts] == [("plot.pdf", "application/pdf")]


def test_sql_has_no_warm_sessions(warm):
    from workbench.errors import UsageError

    with pytest.raises(UsageError, match="no warm sessions"):
        warm.execute("sql", "select 1;", session="s")


def test_state_survives_between_processes(engine_ready, project, workbench_cmd):
    from workbench.sandbox.kernels import stop_sessions

    base = [*workbench_cmd, "exec", "-p", str(project.root), "--session", "cli", "--lang", "python"]
    try:
        assert subprocess.run([*base, "-c", "x = 20 + 22"], capture_output=True, timeout=60).returncode == 0
        done = subprocess.run([*base, "-c", "print(x)"], capture_output=True, timeout=60)
        assert done.stdout == b"42\n", done.stderr
    finally:
        stop_sessions(project)


def test_one_off_and_warm_runs_note_the_same(engine_ready, project):
    """One lifecycle: the same situation gives the same notes whichever transport ran it (over the workspace
    quota, a symlink out of the workspace recorded as a symlink)."""
    from tests.sandbox.conftest import make_settings
    from workbench.sandbox import Sandbox
    from workbench.sandbox.kernels import stop_sessions

    code = ("import os\n"
            "for i in range(3):\n"
            "    open(f'/workspace/TAG-{i}.bin', 'wb').write(b'x' * 400_000)\n"
            "os.symlink('/etc/passwd', '/workspace/TAG-link')\n")
    with Sandbox.open(project, settings=make_settings(workspace_quota="1m")) as box:
        try:
            one_off, _ = run(box, "python", code.replace("TAG", "a"))
            warm, _ = run(box, "python", code.replace("TAG", "b"), session="quota")
        finally:
            stop_sessions(project)
    assert one_off.ok and warm.ok, (one_off, warm)
    assert "the workspace is over its quota of 1m" in one_off.notes
    assert any("a-link is a symlink to /etc/passwd" in note for note in one_off.notes), one_off.notes
    assert [note.replace("b-link", "a-link") for note in warm.notes] == list(one_off.notes)
    assert len(warm.files) == len(one_off.files) == 4


def test_programs_planted_in_the_venv_never_run_for_the_sandbox(engine_ready, project):
    """PID 1 (the runner: python3, under prlimit in the session container) and the programs that set an
    execution's limits and timeout are the image's, by path: the workspace's .venv/bin comes first on the
    PATH, and code could put a python3, prlimit or timeout there for every later container to run."""
    from workbench.sandbox import Sandbox
    from workbench.sandbox.kernels import stop_sessions

    planted = project.workspace / ".venv" / "bin"
    planted.mkdir(parents=True)
    for name in ("python3", "prlimit", "timeout"):
        (planted / name).write_text(f'#!/bin/sh\necho planted > /workspace/ran-{name}\nexec /usr/bin/{name} "$@"\n')
        (planted / name).chmod(0o755)
    show_pid1 = "tr '\\0' ' ' < /proc/1/cmdline"
    with Sandbox.open(project) as box:
        try:
            warm, _ = run(box, "shell", show_pid1, session="planted")
            one_off, _ = run(box, "shell", show_pid1)
        finally:
            stop_sessions(project)
    assert warm.ok and one_off.ok, (warm, one_off)
    assert warm.stdout.kept.startswith(b"/usr/bin/python3 /opt/workbench/runner.py --serve"), warm.stdout.kept
    assert one_off.stdout.kept.startswith(b"/usr/bin/python3 /opt/workbench/runner.py --init"), one_off.stdout.kept
    assert sorted(p.name for p in project.workspace.glob("ran-*")) == []
