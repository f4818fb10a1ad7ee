"""Replay through the real engine: a deterministic session reproduces, one that prints the time or a random
number differs (naming the stream), a changed or missing input is reported and not run, the replay is its own
audited session (trigger replay), and the real workspace is never touched, even by code that tries."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.sandbox.conftest import engine_ready, make_settings  # noqa: F401 - engine_ready is a fixture

pytestmark = pytest.mark.engine


def record(project, *runs):
    """Run (language, code) pairs in one recorded session; returns its id and the results."""
    from workbench.session import WorkSession

    with WorkSession.open(project, settings=make_settings(timeout=30), details={"command": "exec"}) as work:
        results = []
        for language, code in runs:
            execution = work.sandbox.execute(language, code)
            list(execution)
            results.append(execution.result())
        return work.session_id, results


def state_of(root: Path) -> dict[str, tuple]:
    """Every entry of a folder, never followed: kind, size, mtime, ctime, inode and a regular file's hash."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
            found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                 st.st_ino, digest)
    return found


def replay_cli(workbench_cmd, project, *args):
    return subprocess.run([*workbench_cmd, "audit", "replay", "-p", str(project.root), *args],
                          capture_output=True, text=True, timeout=300)


def entries(project, session_id=None, kind=None):
    from workbench.audit import AuditLog

    log = AuditLog.open_path(project.audit_db, create=False, readonly=True)
    try:
        return [e for e in log.entries(session=session_id) if kind is None or e.kind == kind]
    finally:
        log.close()


def test_a_deterministic_session_reproduces_and_is_audited_as_a_replay(engine_ready, project, workbench_cmd):  # noqa: F811
    session, results = record(project,
                              ("shell", 'printf "a,b\\n1,2\\n3,4\\n" > data.csv; echo wrote >&2'),
                              ("python", "rows = open('data.csv').read().splitlines()\n"
                                         "print(len(rows), sum(int(r.split(',')[1]) for r in rows[1:]))\n"
                                         "open('out.csv', 'w').write(rows[-1])\n"))
    assert all(r.ok for r in results) and "data.csv" in {r.path for r in results[1].files_read}
    before = state_of(project.workspace)

    done = replay_cli(workbench_cmd, project, "--session", session)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 execution(s) reproduced bit for bit" in done.stdout
    assert done.stdout.count("│ reproduced │") == 2 and "differs:" not in done.stdout
    assert state_of(project.workspace) == before  # the real workspace: same files, bytes, mtimes, inodes
    # the replay is a session of its own, with trigger replay, its own executions and one verdict each
    started = [e for e in entries(project, kind="session.started") if e.payload.get("trigger") == "replay"]
    assert len(started) == 1
    replay_session = started[0].session_id
    verdicts = entries(project, replay_session, "replay.compared")
    assert [v.payload["execution_id"] for v in verdicts] == [r.execution_id for r in results]
    assert {v.payload["status"] for v in verdicts} == {"reproduced"}
    assert all(v.payload["session"] == session for v in verdicts)
    assert len(entries(project, replay_session, "exec.finished")) == 2
    recorded_env = {e.payload["digest"]: e.payload for e in entries(project, kind="environment.recorded")}
    image_id = recorded_env[results[0].environment]["image_id"]
    assert image_id.startswith("sha256:")  # run on the recorded image by its id, not by a tag that may move
    assert [e.payload["image"] for e in entries(project, replay_session, "sandbox.started")] == [image_id]
    replayed = [json.loads(json.dumps(e.payload)) for e in entries(project, replay_session, "exec.finished")]
    assert replayed[1]["files_read"][0]["path"] == "data.csv"  # it read the copy the first replayed run made
    assert subprocess.run([*workbench_cmd, "audit", "verify", "-p", str(project.root)],
                          capture_output=True, text=True).returncode == 0


def test_time_or_random_output_differs_naming_the_stream(engine_ready, project, workbench_cmd):  # noqa: F811
    session, results = record(project,
                              ("python", "import time, random\nprint('same line')\nprint(time.time_ns(), random.random())"),
                              ("shell", "date +%s%N >&2"))
    assert all(r.ok for r in results)

    done = replay_cli(workbench_cmd, project, "--session", session)

    assert done.returncode == 1, done.stdout + done.stderr
    first, second = results[0].execution_id, results[1].execution_id
    assert f"{first}: stdout differs" in done.stdout
    assert f"{second}: stderr differs" in done.stdout
    assert f"{first}: stderr differs" not in done.stdout  # only the stream that differs is named
    assert "+++ replay stdout" in done.stdout  # a short unified diff: the recorded line out, the replay's in
    assert f"-{results[0].stdout.text().splitlines()[1]}" in done.stdout
    assert "0 of 2 execution(s) reproduced" in done.stdout


def test_a_changed_or_missing_input_is_reported_and_not_run(engine_ready, project):  # noqa: F811
    from workbench.replay import NOT_REPLAYED, replay

    (project.workspace / "data.csv").write_text("a\n1\n")
    (project.workspace / "gone.csv").write_text("b\n2\n")
    session, results = record(project, ("shell", "cat data.csv"), ("shell", "cat gone.csv"))
    assert all(r.ok for r in results)
    (project.workspace / "data.csv").write_text("a\n999\n")  # changed since it was read
    (project.workspace / "gone.csv").unlink()

    report = replay(project, session_id=session)

    assert not report.ok
    changed, missing = report.outcomes
    assert changed.status == missing.status == NOT_REPLAYED
    assert "input data.csv changed" in changed.differences[0].line
    assert "input gone.csv is missing" in missing.differences[0].line
    assert not changed.replay_execution_id  # never run on something else
    verdicts = entries(project, report.replay_session_id, "replay.compared")
    assert [v.payload["status"] for v in verdicts] == ["not_replayed", "not_replayed"]
    assert entries(project, report.replay_session_id, "exec.started") == []


def test_one_execution_and_a_matching_input_from_the_workspace(engine_ready, project):  # noqa: F811
    from workbench.replay import REPRODUCED, replay

    (project.workspace / "in.txt").write_text("hello\n")
    _session, results = record(project, ("shell", "echo first"), ("shell", "tr a-z A-Z < in.txt > up.txt; cat up.txt"))

    report = replay(project, execution_id=results[1].execution_id)

    assert [o.recorded.execution_id for o in report.outcomes] == [results[1].execution_id]
    assert report.outcomes[0].status == REPRODUCED and report.ok
    assert report.outcomes[0].inputs.startswith("1 from workspace")


def test_replayed_code_cannot_reach_the_real_workspace(engine_ready, project):  # noqa: F811
    """Code that behaves itself when recorded and, in the replay, plants a symlink to the real workspace where the
    next execution's input goes, and writes at the real workspace's host path: nothing real is read or changed."""
    from workbench.replay import replay

    real = project.workspace
    (real / "only-in-real.txt").write_text("marks the real workspace\n")
    (real / "secret.txt").write_text("host data\n")
    trap = ("import os\n"
            "if os.path.exists('only-in-real.txt'):\n"
            "    open('data.csv', 'w').write('a\\n1\\n')\n"
            "else:\n"
            f"    os.symlink({str(real / 'secret.txt')!r}, 'data.csv')\n"
            "    os.symlink('/workspace/../../', 'up')\n"
            "    for target in [{path!r}, '/workspace/../escape.txt']:\n"
            "        try:\n"
            "            open(target, 'w').write('escaped')\n"
            "        except OSError as exc:\n"
            "            print(type(exc).__name__)\n").replace("{path!r}", repr(str(real / "escape.txt")))
    session, results = record(project, ("python", trap), ("shell", "cat data.csv"))
    assert all(r.ok for r in results), results
    before = state_of(real)

    report = replay(project, session_id=session)

    assert state_of(real) == before
    assert not (real / "escape.txt").exists() and not (real.parent / "escape.txt").exists()
    planted, reader = report.outcomes
    assert planted.status == "differs"
    assert any(d.what == "file data.csv" and "symlink" in d.line for d in planted.differences)
    assert reader.status == "not_replayed"
    assert "data.csv is a symlink" in reader.differences[0].line
    assert not list(project.state_dir.glob("replay-*"))  # the copy is gone, its symlinks removed, not followed


SITE = Path(".venv/lib/python3.11/site-packages")


def dist(workspace: Path, name: str, version: str) -> None:
    info = workspace / SITE / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_a_different_environment_is_said_plainly(engine_ready, project, workbench_cmd):  # noqa: F811
    dist(project.workspace, "alpha", "1.0")
    session, results = record(project, ("shell", "echo same"))
    assert results[0].environment
    dist(project.workspace, "beta", "2.0")  # installed after the recording

    done = replay_cli(workbench_cmd, project, "--session", session)

    assert done.returncode == 0, done.stdout + done.stderr  # the output still reproduced bit for bit
    assert "the environment differs: +pypi:beta 2.0" in done.stdout
    verdict = entries(project, kind="replay.compared")[-1].payload
    assert verdict["environment"] == results[0].environment != verdict["replay_environment"]


def test_a_log_that_does_not_verify_is_not_replayed(engine_ready, project, workbench_cmd):  # noqa: F811
    import sqlite3

    session, _ = record(project, ("shell", "echo MARKER"))
    conn = sqlite3.connect(project.audit_db)
    with conn:
        conn.execute("UPDATE entries SET payload = replace(payload, 'echo MARKER', 'echo FORGED')")
    conn.close()

    done = replay_cli(workbench_cmd, project, "--session", session)

    assert done.returncode == 1 and "the audit log does not verify" in done.stderr, done.stdout + done.stderr
    assert "FORGED" not in done.stdout and len(done.stderr.strip().splitlines()) == 1


def test_a_warm_cell_replays_as_a_one_off_and_says_so(engine_ready, project):  # noqa: F811
    from workbench.replay import replay
    from workbench.sandbox.kernels import stop_sessions
    from workbench.session import WorkSession

    try:
        with WorkSession.open(project, settings=make_settings(timeout=30)) as work:
            for code in ("x = 41", "print(x + 1)"):
                execution = work.sandbox.execute("python", code, session="w")
                list(execution)
                assert execution.result().ok
            session = work.session_id
    finally:
        stop_sessions(project)

    report = replay(project, session_id=session)

    first, second = report.outcomes
    assert first.status == "reproduced" and second.status == "differs"
    assert {d.what for d in second.differences} >= {"exit code", "stdout", "stderr"}
    assert any("replayed as a one-off run" in note for note in second.notes)


def test_an_image_that_is_gone_is_not_replayed_on_another(engine_ready, project):  # noqa: F811
    import shutil

    from tests.conftest import need
    from workbench.replay import replay
    from workbench.sandbox import BASE_IMAGE

    podman = shutil.which("podman")
    need(podman is not None, "the podman command (to make and remove a throw-away image)")
    tag = f"localhost/wb-replay-test:{project.id[:12]}"
    box = f"wb-replay-test-{project.id[:12]}"
    subprocess.run([podman, "create", "--name", box, BASE_IMAGE, "true"], check=True, capture_output=True)
    try:
        subprocess.run([podman, "commit", "-q", "--change", "LABEL wb.test=replay", box, tag], check=True,
                       capture_output=True)
        from workbench.session import WorkSession

        with WorkSession.open(project, settings=make_settings(timeout=30, image=tag)) as work:
            execution = work.sandbox.execute("shell", "echo on the test image")
            list(execution)
            assert execution.result().ok
            session = work.session_id
    finally:
        subprocess.run([podman, "rm", "-f", box], capture_output=True)
        subprocess.run([podman, "rmi", "-f", tag], capture_output=True)

    report = replay(project, session_id=session)

    (outcome,) = report.outcomes
    assert outcome.status == "not_replayed" and not outcome.replay_execution_id
    assert "by its id sha256:" in outcome.differences[0].line
    assert "is no longer in the engine" in outcome.differences[0].line
