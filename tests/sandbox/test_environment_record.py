"""The environment record without an engine: the fingerprint, a hostile workspace, the caches, a failure.

`workbench.sandbox.environment` over a plain object that has what `record` uses of a sandbox, and a real
`Sandbox` over `FakeEngine` for the lifecycle's side (the record comes before `exec.finished`; a failure is
one note and the result is kept). Against the real engine: tests/sandbox/test_environment_sbom.py.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from tests.sandbox.conftest import Recorder, make_settings
from workbench.sandbox import environment

SITE = ".venv/lib/python3.11/site-packages"


def dist(workspace, name, version):
    info = workspace / SITE / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")


@pytest.fixture(autouse=True)
def fresh_process():
    environment.forget()
    yield
    environment.forget()


@pytest.fixture
def listed(monkeypatch):
    """The image's listing, counted (no container is started here)."""
    calls = []

    def image_packages(sandbox, image):
        calls.append(image)
        return ["bash 5.2 amd64", "dpkg 1.21 amd64"], []

    monkeypatch.setattr(environment, "image_packages", image_packages)
    return calls


@pytest.fixture
def host(project):
    return SimpleNamespace(project=project, image="localhost/img:1", engine=SimpleNamespace(), container="c1")


def test_the_fingerprint_moves_with_an_install_and_not_otherwise(project):
    workspace = project.workspace
    dist(workspace, "alpha", "1.0")
    first = environment.fingerprint(workspace)
    assert environment.fingerprint(workspace) == first
    (workspace / "data.csv").write_text("a,b\n")  # the analyst's files are not the environment
    assert environment.fingerprint(workspace) == first
    dist(workspace, "beta", "2.0")
    assert environment.fingerprint(workspace) != first


def test_a_planted_symlink_is_never_followed(project):
    workspace = project.workspace
    dist(workspace, "alpha", "1.0")
    os.symlink("/etc", workspace / SITE / "evil.dist-info")
    (workspace / ".R").symlink_to("/usr")
    packages, notes = environment.workspace_packages(workspace)
    assert packages["pypi"] == ["alpha 1.0"] and packages["cran"] == []
    assert any("evil.dist-info is a symlink to /etc: not followed" in note for note in notes), notes
    environment.fingerprint(workspace)  # takes the symlink's own signature: nothing behind it is read


def test_a_symlinked_venv_is_not_entered(project, tmp_path):
    outside = tmp_path / "outside" / "lib" / "python3.11" / "site-packages" / "x-1.dist-info"
    outside.mkdir(parents=True)
    (outside / "METADATA").write_text("Name: x\nVersion: 1\n")
    (project.workspace / ".venv").symlink_to(tmp_path / "outside")
    packages, _ = environment.workspace_packages(project.workspace)
    assert packages["pypi"] == []
    before = environment.fingerprint(project.workspace)
    (outside.parent / "y-2.dist-info").mkdir()  # a change behind the symlink is not seen: it is not entered
    assert environment.fingerprint(project.workspace) == before


def test_one_package_list_per_state_and_one_image_listing_per_image(host, listed):
    dist(host.project.workspace, "alpha", "1.0")
    first = environment.record(host, emitting=True)
    assert first.payload is not None and first.payload.digest == first.digest
    assert first.payload.packages["pypi"] == ["alpha 1.0"]
    assert first.payload.packages["deb"] == ["bash 5.2 amd64", "dpkg 1.21 amd64"]
    again = environment.record(host, emitting=True)
    assert again == environment.Recorded(first.digest, None)  # the same state: stored once
    dist(host.project.workspace, "beta", "2.0")
    changed = environment.record(host, emitting=True)
    assert changed.digest != first.digest and changed.payload is not None
    assert changed.payload.packages["pypi"] == ["alpha 1.0", "beta 2.0"]
    assert listed == ["localhost/img:1"]  # the image was listed once
    environment.forget()  # a new process: the project's cache still knows the state was stored
    assert environment.record(host, emitting=True) == environment.Recorded(changed.digest, None)


def test_without_a_bus_the_digest_is_known_but_nothing_is_remembered_as_stored(host, listed):
    quiet = environment.record(host, emitting=False)
    assert quiet.payload is None and quiet.digest.startswith("sha256:")
    loud = environment.record(host, emitting=True)
    assert loud.digest == quiet.digest and loud.payload is not None


def test_dpkg_output_keeps_installed_packages_only():
    text = ("bash 5.2.15-2+b2 amd64 installed\nold 1.0 amd64 config-files\n"
            "evil\x1b[31m 1 amd64 installed\nlibc6 2.36-9 amd64 installed\ngarbage\n")
    lines, notes = environment.parse_dpkg(text)
    assert lines == ["bash 5.2.15-2+b2 amd64", "libc6 2.36-9 amd64"]
    assert notes and "not a package name" in notes[0]


@pytest.fixture
def box(project):
    from workbench.sandbox import BASE_IMAGE, Sandbox
    from workbench.sandbox.fake_engine import FakeEngine

    recorder = Recorder()
    sandbox = Sandbox.open(project, bus=recorder.bus, engine=FakeEngine(images=[BASE_IMAGE]),
                           settings=make_settings(), session_id="s", actor="user:t")
    sandbox.recorder = recorder
    yield sandbox
    sandbox.close()


def run_once(box):
    from tests.sandbox.test_lifecycle_template import Scripted, execute

    return execute(box, Scripted(chunks=[("stdout", b"1\n")])).result()


def test_the_record_precedes_exec_finished_and_names_its_digest(box, listed):
    result = run_once(box)
    kinds = [e.kind for e in box.recorder.events]
    assert kinds.index("environment.recorded") < kinds.index("exec.finished")
    recorded = box.recorder.of("environment.recorded")[0].payload
    finished = box.recorder.of("exec.finished", result.execution_id)[0].payload
    assert finished["environment"] == recorded["digest"] == result.environment
    run_once(box)
    assert len(box.recorder.of("environment.recorded")) == 1


def test_a_failing_record_is_one_note_and_the_result_is_kept(box, monkeypatch):
    def broken(sandbox, emitting):
        raise OSError("disk on fire")

    monkeypatch.setattr(environment, "record", broken)
    result = run_once(box)
    assert result.exit_code == 0 and result.stdout.kept == b"1\n" and result.environment is None
    assert "the environment could not be recorded: OSError: disk on fire" in result.notes
    finished = box.recorder.of("exec.finished", result.execution_id)[0].payload
    assert "environment" not in finished and not box.recorder.of("environment.recorded")


def test_a_copied_project_or_a_new_log_stores_its_package_list_again(host, listed):
    host.project.audit_db.write_bytes(b"")  # the log this project's cache is about
    first = environment.record(host, emitting=True)
    environment.forget()
    assert environment.record(host, emitting=True).payload is None  # the same log holds it
    fresh = host.project.audit_db.with_name("fresh.db")
    fresh.write_bytes(b"")  # another file (made while the old one exists: another inode): a fresh log
    os.replace(fresh, host.project.audit_db)
    environment.forget()
    again = environment.record(host, emitting=True)
    assert again.digest == first.digest and again.payload is not None
