"""The replay's copy of the workspace on its own (no engine): inputs restored only by matching hash, nothing
followed in either folder, a symlink planted in the copy never written through, the copy removed."""

from __future__ import annotations

import hashlib
import os

import pytest

from workbench import events
from workbench.confined import Confined, Refused
from workbench.replay.record import Recorded
from workbench.replay.scratch import Scratch


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded(*reads, files=()):
    finished = events.ExecFinished(execution_id="e1", files_read=tuple(reads), files=tuple(files))
    return Recorded("e1", "s1", "shell", "cat x", 30.0, None, "img", finished)


@pytest.fixture
def scratch(project):
    made = Scratch(project.state_dir, project.workspace)
    yield made
    made.close()


def test_an_input_comes_from_the_workspace_only_with_the_recorded_hash(project, scratch):
    (project.workspace / "sub").mkdir()
    (project.workspace / "sub" / "in.txt").write_bytes(b"data\n")
    (project.workspace / "changed.txt").write_bytes(b"new\n")
    done = scratch.restore(recorded({"path": "sub/in.txt", "sha256": sha(b"data\n"), "size": 5},
                                    {"path": "changed.txt", "sha256": sha(b"old\n"), "size": 4},
                                    {"path": "missing.txt", "sha256": sha(b"x"), "size": 1}))
    assert done.from_workspace == ["sub/in.txt"]
    assert (scratch.workspace / "sub" / "in.txt").read_bytes() == b"data\n"
    assert not (scratch.workspace / "changed.txt").exists()  # never substituted
    assert [p.split(":")[0] for p in done.problems] == ["input changed.txt changed", "input missing.txt is missing"]


def test_a_symlink_in_the_workspace_is_not_followed(project, scratch, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"host\n")
    os.symlink(outside, project.workspace / "link.txt")
    done = scratch.restore(recorded({"path": "link.txt", "sha256": sha(b"host\n"), "size": 5}))
    assert "link.txt is a symlink" in done.problems[0]
    assert not os.path.lexists(scratch.workspace / "link.txt")


def test_what_the_copy_already_holds_must_match(project, scratch, tmp_path):
    (scratch.workspace / "made.txt").write_bytes(b"by the replay\n")
    (project.workspace / "made.txt").write_bytes(b"recorded\n")  # the real one matches, but is not used
    done = scratch.restore(recorded({"path": "made.txt", "sha256": sha(b"recorded\n"), "size": 9}))
    assert "the replay's earlier executions left sha256" in done.problems[0]
    assert (scratch.workspace / "made.txt").read_bytes() == b"by the replay\n"
    os.symlink(tmp_path / "target", scratch.workspace / "planted.txt")  # as replayed code could leave it
    (project.workspace / "planted.txt").write_bytes(b"in\n")
    done = scratch.restore(recorded({"path": "planted.txt", "sha256": sha(b"in\n"), "size": 3}))
    assert "planted.txt is a symlink" in done.problems[0]
    assert not (tmp_path / "target").exists()  # never written through


def test_its_own_output_read_back_is_not_an_input(project, scratch):
    done = scratch.restore(recorded({"path": "out.csv", "sha256": sha(b"o"), "size": 1},
                                    files=[{"path": "out.csv", "change": "created", "sha256": sha(b"o"), "size": 1}]))
    assert done.problems == [] and done.from_workspace == []


def test_copy_from_replaces_a_symlink_and_refuses_one_as_its_source(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(), dst.mkdir()
    (src / "f").write_bytes(b"bytes")
    (tmp_path / "victim").write_bytes(b"keep")
    os.symlink(tmp_path / "victim", dst / "f")
    os.symlink(tmp_path / "victim", src / "l")
    with Confined(src) as a, Confined(dst) as b:
        assert b.copy_from(a, "f", "f") == sha(b"bytes")
        assert b.copy_from(a, "f", "g", expect=sha(b"other")) == sha(b"bytes")
        with pytest.raises(Refused):
            b.copy_from(a, "l", "l")
    assert (tmp_path / "victim").read_bytes() == b"keep"
    assert not (dst / "f").is_symlink() and (dst / "f").read_bytes() == b"bytes"
    assert not (dst / "g").exists() and [p.name for p in dst.iterdir()] == ["f"]  # no temporary file left


def test_environments_are_copied_with_their_symlinks_and_the_copy_is_removed(project):
    venv = project.workspace / ".venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink("/usr/bin/python3", venv / "bin" / "python")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    made = Scratch(project.state_dir, project.workspace)
    assert made.copy_environments() == 1
    assert os.readlink(made.workspace / ".venv" / "bin" / "python") == "/usr/bin/python3"
    assert (made.workspace / ".venv" / "pyvenv.cfg").read_text() == "home = /usr/bin\n"
    made.close()
    assert not made.root.exists() and os.path.exists("/usr/bin/python3") and venv.is_dir()
