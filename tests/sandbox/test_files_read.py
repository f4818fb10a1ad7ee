"""Files read: what code opened in the workspace is recorded with its hash, through the real engine (one-off,
shell and warm) and through the watcher on its own (symlinks, FIFOs, deletions, caps, watch limits)."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.sandbox.conftest import make_settings, run
from workbench.events.execution import ExecFinished
from workbench.sandbox import reads
from workbench.sandbox.types import FileRead


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def by_path(result) -> dict[str, FileRead]:
    return {r.path: r for r in result.files_read}


# --- through the real engine -----------------------------------------------------------------------

@pytest.mark.engine
def test_python_reads_data_and_writes_out(sandbox, module_project, recorder):
    data = b"a,b\n1,2\n3,4\n"
    (module_project.workspace / "data.csv").write_bytes(data)
    code = ("rows = open('/workspace/data.csv').read().splitlines()\n"
            "open('/workspace/out.csv', 'w').write('\\n'.join(rows[:2]))\n")
    result, _ = run(sandbox, "python", code)
    assert result.ok, result
    read = by_path(result)
    assert read["data.csv"].sha256 == sha(data) and read["data.csv"].size == len(data)
    assert "out.csv" not in read  # written, not read
    changed = {c.path: c for c in result.files}
    assert changed["out.csv"].change == "created"
    assert changed["out.csv"].sha256 == sha((module_project.workspace / "out.csv").read_bytes())
    # exec.finished carries them, and decodes through its payload class
    finished = recorder.of("exec.finished", result.execution_id)[-1]
    decoded = ExecFinished.decode(finished.payload)
    assert {"path": "data.csv", "sha256": sha(data), "size": len(data)} in [dict(r) for r in decoded.files_read]
    assert ExecFinished.VERSION == 4


@pytest.mark.engine
def test_cat_in_a_shell_execution_is_recorded_once(sandbox, module_project):
    (module_project.workspace / "notes.txt").write_bytes(b"hello\n")
    result, _ = run(sandbox, "shell", "cat /workspace/notes.txt; cat /workspace/notes.txt; ls /workspace >/dev/null")
    assert result.ok and result.stdout.kept == b"hello\nhello\n"
    assert [r for r in result.files_read if r.path == "notes.txt"] == [FileRead("notes.txt", sha(b"hello\n"), 6)]


@pytest.mark.engine
def test_a_later_execution_does_not_inherit_reads(sandbox, module_project):
    (module_project.workspace / "once.txt").write_bytes(b"1")
    first, _ = run(sandbox, "shell", "cat /workspace/once.txt")
    second, _ = run(sandbox, "shell", "echo nothing read")
    assert "once.txt" in by_path(first)
    assert "once.txt" not in by_path(second)


@pytest.mark.engine
def test_a_warm_session_read(sandbox, module_project):
    from workbench.sandbox.kernels import stop_sessions

    (module_project.workspace / "warm.txt").write_bytes(b"warm data")
    try:
        run(sandbox, "python", "x = 1", session="reads")
        result, _ = run(sandbox, "python", "print(open('/workspace/warm.txt').read())", session="reads")
    finally:
        stop_sessions(sandbox.project)
    assert result.ok, result
    assert by_path(result)["warm.txt"] == FileRead("warm.txt", sha(b"warm data"), 9)


@pytest.mark.engine
def test_reads_in_the_venv_are_counted_not_listed(sandbox, module_project):
    lib = module_project.workspace / ".venv" / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for name in ("a.py", "b.py"):
        (lib / name).write_text("x")
    result, _ = run(sandbox, "shell", "cat /workspace/.venv/lib/a.py /workspace/.venv/lib/b.py >/dev/null")
    assert result.ok, result
    assert not [r for r in result.files_read if r.path.startswith(".venv")]
    assert dict(result.reads_own).get(".venv", 0) >= 2
    assert result.to_payload()["reads_own"][".venv"] >= 2


@pytest.mark.engine
def test_a_symlink_to_etc_passwd_is_not_followed_by_the_host(sandbox, module_project):
    host_passwd = sha(Path("/etc/passwd").read_bytes())
    result, _ = run(sandbox, "shell", "ln -sf /etc/passwd /workspace/pw; cat /workspace/pw >/dev/null; "
                                      "ln -sf /etc /workspace/etclink; cat /workspace/etclink/passwd >/dev/null")
    assert result.ok, result
    assert all(r.sha256 != host_passwd for r in result.files_read)
    assert not [r for r in result.files_read if "passwd" in r.path and r.kind == "file"]
    link = {c.path: c for c in result.files}["pw"]
    assert link.kind == "symlink" and link.target == "/etc/passwd"


@pytest.mark.engine
def test_record_reads_off_records_none(engine_ready, tmp_path):
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    project = Project.init(tmp_path / "p")
    (project.workspace / "d.txt").write_text("d")
    box = Sandbox.open(project, settings=make_settings(timeout=30, record_reads=False), session_id="t", actor="user:t")
    try:
        result, _ = run(box, "shell", "cat /workspace/d.txt")
    finally:
        box.close()
    assert result.ok and result.files_read == () and "files_read" not in result.to_payload()


# --- the watcher on its own (a real inotify on a temporary folder) --------------------------------

def collect(root: Path, act) -> tuple:
    watcher, why = reads.watcher_for(root)
    assert watcher is not None, why
    collector = watcher.begin()
    act()
    watcher.end(collector)
    return collector.finish(set())


def test_new_folders_are_watched_and_writes_are_not_reads(tmp_path):
    (tmp_path / "in.txt").write_text("in")

    def act():
        (tmp_path / "in.txt").read_text()
        os.makedirs(tmp_path / "new" / "deep")
        time.sleep(0.2)  # a new folder's watch is added when its IN_CREATE arrives (see reads.py)
        (tmp_path / "new" / "deep" / "f").write_text("f")
        (tmp_path / "new" / "deep" / "f").read_text()
        (tmp_path / "w.txt").write_text("w")

    listed, own, notes = collect(tmp_path, act)
    assert [r.path for r in listed] == ["in.txt", "new/deep/f"]
    assert listed[1].sha256 == sha(b"f") and own == () and notes == []


def test_a_folder_reached_twice_is_watched_once_and_warns_nothing(tmp_path):
    """A new tree's walk and its folders' own IN_CREATE can both reach a folder (one made in the instant between
    its parent's watch and the walk's listing, as pip does): that must not re-register the callback (watchdog
    then warns on stderr, which a `workbench exec` user would see), and reads there still count, once."""
    import warnings

    os.makedirs(tmp_path / "t" / "a" / "b")
    watcher, why = reads.watcher_for(tmp_path)
    assert watcher is not None, why
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watcher._watch_tree("t")  # what a second IN_CREATE for this tree does
        watcher._watch_tree("t/a")
        time.sleep(0.1)
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []

    def act():
        (tmp_path / "t" / "a" / "b" / "f").write_text("f")
        (tmp_path / "t" / "a" / "b" / "f").read_text()

    listed, _own, notes = collect(tmp_path, act)
    assert [(r.path, r.sha256) for r in listed] == [("t/a/b/f", sha(b"f"))] and notes == []


def test_back_to_back_executions_never_wait_on_a_merged_mark(tmp_path):
    """The kernel merges two identical events in a row: marks alternate between two files so none is lost."""
    watcher, why = reads.watcher_for(tmp_path)
    assert watcher is not None, why
    start = time.perf_counter()
    for _ in range(50):
        collector = watcher.begin()
        watcher.end(collector)
        assert collector.finish(set()) == ((), (), [])
    assert time.perf_counter() - start < reads.MARK_WAIT


def test_a_read_file_swapped_for_a_symlink_or_fifo_or_deleted_is_recorded_as_what_it_became(tmp_path):
    for name in ("link", "pipe", "gone"):
        (tmp_path / name).write_text("x")
    folder = reads.Confined(tmp_path)
    collector = reads.Reads(folder)
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / "pipe").unlink()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "gone").unlink()
    assert collector.hash("link") == FileRead("link", None, len("/etc/passwd"), kind="symlink", target="/etc/passwd")
    assert collector.hash("pipe") == FileRead("pipe", None, None, kind="fifo")  # never opened: no hang
    assert collector.hash("gone") == FileRead("gone", None, None, kind="deleted")
    folder.close()


def test_many_files_read_give_a_count_past_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(reads, "LISTED", 3)
    for i in range(8):
        (tmp_path / f"f{i}").write_text(str(i))

    def act():
        for i in range(8):
            (tmp_path / f"f{i}").read_text()

    listed, _own, notes = collect(tmp_path, act)
    assert len(listed) == 3
    assert any("5 more files were read than the 3 listed" in n for n in notes)


def test_the_watch_limit_is_a_note_not_a_failure(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x").write_text("x")
    real = reads.InotifyFD.add_callback
    calls = []

    def limited(self, path, mask, callback, id_):
        calls.append(path)
        if len(calls) > 2:  # the private mark folder and the workspace root, then the limit
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return real(self, path, mask, callback, id_)

    monkeypatch.setattr(reads.InotifyFD, "add_callback", limited)
    listed, _own, notes = collect(tmp_path, lambda: (tmp_path / "a" / "b" / "x").read_text())
    assert listed == ()  # its folder had no watch
    assert any("max_user_watches" in n for n in notes)


def test_old_exec_finished_entries_decode_and_encode_as_they_were():
    v3 = {"execution_id": "e", "language": "python", "session": None, "exit_code": 0, "duration": 0.1,
          "timed_out": False, "killed_by": None, "limits_enforced": True, "state_lost": False, "notes": [],
          "stdout": {}, "stderr": {}, "files": [], "artifacts": []}
    decoded = ExecFinished.decode(v3)
    assert decoded.files_read == () and decoded.encode() == v3


# --- shown: the PDF report and the audit export -----------------------------------------------------

@pytest.mark.engine
def test_the_report_and_the_export_show_reads_beside_writes(engine_ready, tmp_path, monkeypatch):
    import json
    import subprocess
    import sys

    import keyring
    from keyring.backends import fail

    from tests.report.conftest import pdf_text
    from workbench.project import Project
    from workbench.report import render_report
    from workbench.session import WorkSession

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "user-data"))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        project = Project.init(tmp_path / "proj")
        data = b"x,y\n1,2\n"
        (project.workspace / "data.csv").write_bytes(data)
        with WorkSession.open(project) as ws:
            result = ws.sandbox.execute("python", "open('/workspace/out.csv', 'w').write("
                                                  "open('/workspace/data.csv').read().upper())").result()
        assert result.ok, result
        out = tmp_path / "r.pdf"
        render_report(project, out)
        text = pdf_text(out)
        assert "read data.csv" in text and sha(data) in text
        assert "created out.csv" in text
        exported = tmp_path / "log.jsonl"
        done = subprocess.run([sys.executable, "-m", "workbench", "audit", "export", "-p", str(project.root),
                               "--out", str(exported)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        finished = [json.loads(line) for line in exported.read_text().splitlines() if '"exec.finished"' in line]
        assert finished, exported.read_text()[:500]
        payloads = [e["event"]["payload"] if "event" in e else e["payload"] for e in finished]
        assert {"path": "data.csv", "sha256": sha(data), "size": len(data)} in payloads[-1]["files_read"]
    finally:
        keyring.set_keyring(previous)


def test_the_tui_step_card_names_files_read_beside_files_changed():
    import asyncio

    from textual.app import App

    from workbench.events import Event
    from workbench.tui.widgets.steps_panel import StepCard, StepsPanel

    class One(App):
        def compose(self):
            yield StepsPanel()

    async def go():
        app = One()
        async with app.run_test() as pilot:
            panel = app.query_one(StepsPanel)
            panel.add_event(Event("exec.started", "s", "user:t", {"execution_id": "e", "language": "python",
                                                                   "code": "x"}))
            panel.add_event(Event("exec.finished", "s", "user:t", {
                "execution_id": "e", "exit_code": 0, "duration": 0.1,
                "files": [{"path": "out.csv", "change": "created", "sha256": "0" * 64, "size": 1}],
                "files_read": [{"path": "data\x1b[31m.csv", "sha256": "1" * 64, "size": 2}]}))
            await pilot.pause()
            return [card.result for card in app.query(StepCard)]

    results = asyncio.run(go())
    assert any("files: out.csv (created)" in r and "read: data" in r and "\x1b" not in r for r in results), results
