"""The execution record cannot be fooled by what code leaves in the workspace (host-side, no engine needed).

The same traps are planted from inside a real container in tests/security/test_record_attacks.py; these
pin the mechanism down on plain folders.
"""

from __future__ import annotations

import os

import pytest

from workbench.sandbox import workspace


def changes_of(root, before):
    return {c.path: c for c in workspace.diff(root, before, workspace.snapshot(root))}


def test_same_size_rewrite_with_mtime_restored_is_recorded(tmp_path):
    target = tmp_path / "data.csv"
    target.write_text("a,1\n")
    st = os.stat(target)
    before = workspace.snapshot(tmp_path)
    target.write_text("a,9\n")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its mtime put back
    assert os.stat(target).st_mtime_ns == st.st_mtime_ns and os.stat(target).st_size == st.st_size
    found = changes_of(tmp_path, before)
    assert found["data.csv"].change == "modified"
    import hashlib
    assert found["data.csv"].sha256 == hashlib.sha256(b"a,9\n").hexdigest()


def test_a_file_replaced_by_another_of_the_same_size_and_mtime_is_recorded(tmp_path):
    (tmp_path / "a").write_text("one")
    st = os.stat(tmp_path / "a")
    before = workspace.snapshot(tmp_path)
    (tmp_path / "b").write_text("two")
    os.utime(tmp_path / "b", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "b", tmp_path / "a")
    assert changes_of(tmp_path, before)["a"].change == "modified"


def test_only_workbench_top_level_folders_are_skipped(tmp_path):
    for folder in (".venv", ".R", "out/__pycache__", "out/.venv", "deep/.workbench-runner", ".ipynb_checkpoints"):
        (tmp_path / folder).mkdir(parents=True)
    before = workspace.snapshot(tmp_path)
    for path in (".venv/x.py", ".R/pkg", "out/__pycache__/x.csv", "out/.venv/y.csv",
                 "deep/.workbench-runner/z.csv", ".ipynb_checkpoints/n.ipynb"):
        (tmp_path / path).write_text("x")
    recorded = set(changes_of(tmp_path, before))
    assert recorded == {"out/__pycache__/x.csv", "out/.venv/y.csv", "deep/.workbench-runner/z.csv",
                        ".ipynb_checkpoints/n.ipynb"}


def test_symlinks_and_special_files_are_recorded_as_what_they_are(tmp_path):
    before = workspace.snapshot(tmp_path)
    os.symlink("/etc/shadow", tmp_path / "shadow")
    os.symlink("/etc", tmp_path / "etc")
    os.symlink("/dev/zero", tmp_path / "zero")
    os.mkfifo(tmp_path / "pipe")
    found = changes_of(tmp_path, before)
    assert found["shadow"].kind == "symlink" and found["shadow"].target == "/etc/shadow"
    assert found["shadow"].sha256 is None
    assert found["zero"].kind == "symlink" and found["zero"].sha256 is None
    assert found["pipe"].kind == "fifo" and found["pipe"].sha256 is None
    assert not any(p.startswith("etc/") for p in found)  # the symlinked folder is not entered
    notes = workspace.notes(tuple(found.values()))
    assert any("shadow is a symlink to /etc/shadow: recorded as a symlink, not followed" in n for n in notes)
    assert any("pipe is a fifo" in n for n in notes)
    payloads = [c.to_payload() for c in found.values()]
    assert {"path": "shadow", "change": "created", "sha256": None, "size": len("/etc/shadow"),
            "kind": "symlink", "target": "/etc/shadow"} in payloads


@pytest.mark.timeout(20)
def test_a_fifo_swapped_in_after_the_walk_never_hangs_the_hash(tmp_path):
    (tmp_path / "f").write_text("x")
    before = workspace.snapshot(tmp_path)
    (tmp_path / "f").write_text("y")
    after = workspace.snapshot(tmp_path)
    os.unlink(tmp_path / "f")
    os.mkfifo(tmp_path / "f")  # between the walk and the hash
    change = {c.path: c for c in workspace.diff(tmp_path, before, after)}["f"]
    assert change.kind == "fifo" and change.sha256 is None


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another uid needs root")
def test_handing_the_workspace_over_never_follows_a_symlink(tmp_path):
    from workbench.sandbox import policy

    victim = tmp_path / "host-dir"
    victim.mkdir()
    (victim / "secret").write_text("s")
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "f").write_text("x")
    os.symlink(victim, ws / "link")
    os.symlink(victim / "secret", ws / "sub" / "file-link")
    policy.hand_workspace_to(ws, 1000, 1000)
    assert os.stat(ws / "sub" / "f").st_uid == 1000 and os.lstat(ws / "link").st_uid == 1000
    assert os.stat(victim).st_uid == 0 and os.stat(victim / "secret").st_uid == 0
    snap = workspace.snapshot(ws, owner=(1001, 1001))
    assert os.stat(victim).st_uid == 0 and os.stat(victim / "secret").st_uid == 0
    assert os.stat(ws / "sub" / "f").st_uid == 1001
    # chown moved ctime; that must not read as a change the code made
    assert workspace.diff(ws, snap, workspace.snapshot(ws)) == ()
