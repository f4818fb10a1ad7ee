"""The confined-access module on its own: nothing followed, nothing special opened, every read bounded."""

from __future__ import annotations

import os

import pytest

from workbench.confined import Confined, Refused


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("hello")
    os.symlink("/etc/passwd", tmp_path / "passwd")
    os.symlink("/etc", tmp_path / "etc")
    os.mkfifo(tmp_path / "fifo")
    with Confined(tmp_path) as confined:
        yield confined


@pytest.mark.parametrize("path, words", [
    ("passwd", "passwd is a symlink to /etc/passwd: not followed"),
    ("etc/hostname", "etc is a symlink to /etc: not followed"),
    ("fifo", "fifo is a FIFO: not opened"),
    ("../x", "'..' leaves the folder"),
    ("/etc/passwd", "an absolute path is outside the folder"),
    ("a", "a is a folder: not opened"),
])
@pytest.mark.timeout(10)
def test_reads_refuse_what_is_not_a_regular_file_inside(folder, path, words):
    with pytest.raises(Refused) as caught:
        folder.read(path, 100)
    assert words in caught.value.one_line()


def test_reads_are_bounded(folder, tmp_path):
    with open(tmp_path / "sparse", "wb") as handle:
        handle.truncate(8 << 30)
    found = folder.read("sparse", 1000)
    assert len(found.data) == 1000 and found.truncated and found.size == 8 << 30
    assert folder.read("a/f.txt", 1000).data == b"hello"


def test_a_planted_temporary_symlink_is_never_written_through(folder, tmp_path):
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_text("untouched")
    os.symlink(victim, tmp_path / "a" / ".f.txt.wb-tmp")
    folder.write("a/f.txt", b"new")
    os.symlink(victim, tmp_path / "target-link")
    folder.write("target-link", b"replaced")  # the link itself is replaced
    assert victim.read_text() == "untouched"
    assert folder.read("a/f.txt", 10).data == b"new"
    assert not os.path.islink(tmp_path / "target-link")


def test_walk_never_enters_a_symlinked_folder_and_closes_what_it_opened(folder):
    before = len(os.listdir("/proc/self/fd"))
    kinds = {e.path: e.kind for e in folder.walk()}
    assert kinds["etc"] == "symlink" and not any(p.startswith("etc/") for p in kinds)
    for _ in folder.walk():
        break  # a caller that stops early
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_symlinked_root_is_refused(tmp_path):
    os.symlink("/etc", tmp_path / "root-link")
    with pytest.raises(Refused, match="is a symlink: not followed"):
        Confined(tmp_path / "root-link")
