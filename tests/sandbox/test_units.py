"""Sandbox pieces that need no engine: languages, output accounting, workspace diffs, engine discovery."""

from __future__ import annotations

import hashlib
import socket

import pytest

from workbench import languages
from workbench.config import Settings
from workbench.errors import UsageError


def test_every_language_has_a_command():
    for name in ("python", "r", "shell", "sql"):
        argv = languages.get(name).command(file="/opt/x", python="/workspace/.venv/bin/python",
                                           database="/workspace/data.db")
        assert "/opt/x" in " ".join(argv)
    assert languages.get("bash").name == "shell" and languages.get("py").name == "python"
    assert languages.get("python").command(file="f", python="/venv/python")[0] == "/venv/python"


def test_unknown_language_names_the_choices():
    with pytest.raises(UsageError, match="python, r, shell, sql"):
        languages.get("cobol")


def test_recorder_keeps_the_cap_and_hashes_everything():
    from workbench.sandbox.streams import StreamRecorder

    recorder = StreamRecorder(cap=10)
    assert recorder.add(b"hello ") == b"hello "
    assert recorder.add(b"world, again") == b"worl"
    assert recorder.add(b"more") == b""
    summary = recorder.summary()
    assert summary.kept == b"hello worl" and summary.truncated and summary.total_bytes == 22
    assert summary.sha256 == hashlib.sha256(b"hello world, againmore").hexdigest()


def test_workspace_diff_reports_created_modified_deleted(tmp_path):
    from workbench.sandbox import workspace

    (tmp_path / "keep").write_text("same")
    (tmp_path / "change").write_text("a")
    (tmp_path / "remove").write_text("x")
    (tmp_path / ".venv").mkdir()
    before = workspace.snapshot(tmp_path)
    (tmp_path / "change").write_text("bb")
    (tmp_path / "remove").unlink()
    (tmp_path / "new.png").write_bytes(b"png")
    (tmp_path / ".venv" / "lib.py").write_text("ignored")
    changes = workspace.diff(tmp_path, before, workspace.snapshot(tmp_path))
    assert {(c.path, c.change) for c in changes} == {("change", "modified"), ("remove", "deleted"),
                                                    ("new.png", "created")}
    assert [a.mime for a in workspace.artifacts(changes)] == ["image/png"]


def test_endpoint_order(monkeypatch, tmp_path):
    from workbench.sandbox.engine import candidate_endpoints

    monkeypatch.setenv("DOCKER_HOST", "tcp://engine:2375")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    settings = Settings(engine={"host": "/srv/engine.sock"})
    assert candidate_endpoints(settings) == [
        "tcp://engine:2375", "unix:///srv/engine.sock", f"unix://{tmp_path}/podman/podman.sock",
        "unix:///run/podman/podman.sock", "unix:///var/run/docker.sock"]


def test_probe_of_a_socket_with_nothing_behind_it(monkeypatch, tmp_path):
    from workbench.sandbox import probe

    path = tmp_path / "dead.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # exists, but nobody listens
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        found = probe(Settings())
    finally:
        dead.close()
    assert not found.reachable and found.error and str(path) in found.error


def test_probe_of_a_missing_socket(monkeypatch, tmp_path):
    from workbench.sandbox import probe

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    found = probe(Settings())
    assert not found.reachable and "does not exist" in found.error


@pytest.mark.parametrize("spec, ok", [("pandas", True), ("pandas==2.2.2", True), ("requests[socks]>=2", True),
                                      ("--index-url=http://x", False), ("a; rm -rf /", False),
                                      ("git+https://x/y", False)])
def test_install_accepts_names_and_pins_only(spec, ok):
    from workbench.sandbox.install import check_packages

    if ok:
        assert check_packages([spec]) == [spec]
    else:
        with pytest.raises(UsageError):
            check_packages([spec])


def test_size_parsing():
    from workbench.sandbox.policy import parse_size

    assert parse_size("2g") == 2 * 1024 ** 3 and parse_size("512m") == 512 * 1024 ** 2 and parse_size(100) == 100
    with pytest.raises(ValueError):
        parse_size("lots")


def test_limits_fall_back_to_rlimits_when_not_enforced():
    from workbench.sandbox.policy import rlimits

    settings = Settings(sandbox={"memory": "1g", "pids": 64})
    assert rlimits(settings, limits_enforced=False)["as"] == 1024 ** 3
    assert rlimits(settings, limits_enforced=False)["nproc"] == 64
    assert "as" not in rlimits(settings, limits_enforced=True)
