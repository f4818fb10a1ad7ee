"""`workbench audit replay` on bad input: one line, exit 2, no traceback (no engine needed)."""

from __future__ import annotations

import subprocess


def replay(workbench_cmd, project, *args):
    return subprocess.run([*workbench_cmd, "audit", "replay", "-p", str(project.root), *args],
                          capture_output=True, text=True, timeout=120)


def test_bad_input_is_one_line(workbench_cmd, project):
    from workbench.session import WorkSession

    done = replay(workbench_cmd, project)
    assert done.returncode == 2 and "no audit log" in done.stderr
    with WorkSession.open(project):  # a session that ran no code
        pass
    for args, needle in (((), "holds no finished execution"), (("--session", "nope"), "no session 'nope'"),
                         (("--execution", "nope"), "no execution 'nope'")):
        done = replay(workbench_cmd, project, *args)
        assert done.returncode == 2, done
        assert needle in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    assert not list(project.state_dir.glob("replay-*"))
