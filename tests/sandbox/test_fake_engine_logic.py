"""Sandbox logic on `FakeEngine`, no container engine needed: which stale containers go, and that an install
step's container is removed whatever happens to it. (The same logic runs on the real engine in test_lifecycle
and the install tests; these add the cases that are hard to stage there, and run everywhere.)"""

from __future__ import annotations

import socket

import pytest

from workbench.sandbox import BASE_IMAGE
from workbench.sandbox.fake_engine import FakeEngine, FakeEngineError
from workbench.sandbox.spec import ContainerSpec

DEAD_PID = 99999999  # no process has it


@pytest.fixture
def fake():
    engine = FakeEngine(images=[BASE_IMAGE])
    yield engine
    engine.shutdown()


@pytest.fixture
def box(project, fake):
    from tests.sandbox.conftest import make_settings
    from workbench.sandbox import Sandbox

    with Sandbox.open(project, engine=fake, settings=make_settings(timeout=30, runtime="")) as opened:
        yield opened


def _made(fake, labels, run: bool) -> str:
    container = fake.create_container(ContainerSpec(BASE_IMAGE, ("sleep", "60"), labels=labels))
    if run:
        fake.start(container)
    return container


def test_open_removes_stale_containers_and_only_those(project, fake, tmp_path):
    from tests.sandbox.conftest import make_settings
    from workbench.project import Project
    from workbench.sandbox import Sandbox
    from workbench.sandbox.sandbox import ROLE_EXEC, owner_label

    here, other = project.id, Project.init(tmp_path / "other").id
    me, dead, elsewhere = owner_label(), f"{socket.gethostname()}:{DEAD_PID}", f"another-host:{DEAD_PID}"

    def labels(project_id, role, owner):
        return {"io.workbench.project": project_id, "io.workbench.role": role, "io.workbench.owner": owner}

    gone = {
        _made(fake, labels(here, ROLE_EXEC, dead), run=True),  # a crashed process's one-off container
        _made(fake, labels(here, ROLE_EXEC, me), run=False),  # ours, but it stopped (or never started)
        _made(fake, labels(other, "kernel", dead), run=False),  # any project's, never started, owner gone
    }
    kept = {
        _made(fake, labels(here, ROLE_EXEC, me), run=True),  # a live process's running container
        _made(fake, labels(other, "kernel", dead), run=True),  # a warm runner outlives its CLI process
        _made(fake, labels(other, "install", me), run=False),  # its owner (this process) is alive
        _made(fake, labels(other, "kernel", elsewhere), run=False),  # another machine's: not ours to judge
        _made(fake, {"unrelated": "1"}, run=False),  # not Workbench's at all
    }
    with Sandbox.open(project, engine=fake, settings=make_settings(runtime="")):
        assert set(fake.removed) == gone
        assert set(fake.live()) == kept
    assert fake.closed


def test_a_missing_image_is_one_line_and_the_engine_is_closed(project):
    from workbench.sandbox import Sandbox
    from workbench.sandbox.errors import ImageMissing

    engine = FakeEngine(images=[])
    with pytest.raises(ImageMissing) as caught:
        Sandbox.open(project, engine=engine)
    assert "workbench setup" in caught.value.one_line() and engine.closed and engine.created == []


def _install_run(box, command, **options):
    from workbench.sandbox.managers.install_container import run_container

    return run_container(box, image=BASE_IMAGE, command=command, user=box.identity.user, allowed=frozenset(),
                         mounts={}, workspace=True, hardened=True, progress=options.pop("progress", None),
                         **options)


def test_an_install_container_runs_hardened_without_network_and_is_removed(box, fake):
    (box.project.workspace / "seen.txt").write_text("workspace")
    lines = []
    run = _install_run(box, ["sh", "-c", "cat /workspace/seen.txt; echo; echo two >&2; exit 3"],
                       progress=lines.append)
    assert run.exit_code == 3
    assert "workspace" in run.output and "two" in run.output and "workspace" in lines
    assert fake.live() == [] and fake.removed == [run.container]
    spec = fake.created[-1]
    assert spec.network == "none" and spec.cap_drop == ("ALL",) and spec.read_only_rootfs
    assert spec.labels["io.workbench.role"] == "install" and spec.mount_at("/workspace") is not None
    assert spec.env["PATH"] == "/usr/local/bin:/usr/bin:/bin"  # the image's folders, never the venv's


def test_an_install_container_is_removed_when_its_progress_raises(box, fake):
    def interrupted(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _install_run(box, ["sh", "-c", "echo first; sleep 30"], progress=interrupted)
    assert fake.live() == [] and len(fake.removed) == 1


def test_an_install_container_that_cannot_start_is_removed(box, fake):
    with pytest.raises(FakeEngineError):
        _install_run(box, ["/nonexistent/pip"])
    assert fake.live() == [] and len(fake.removed) == 1


def test_a_kept_install_container_is_the_callers_to_commit_and_remove(box, fake):
    run = _install_run(box, ["true"], keep=True)
    assert run.exit_code == 0 and fake.live() == [run.container]
    fake.commit(run.container, "localhost/workbench-project-x", "latest")
    fake.remove(run.container)
    assert fake.image_exists("localhost/workbench-project-x:latest") and fake.live() == []


def test_the_fake_refuses_a_command_that_would_signal_every_host_process(fake):
    """The one-off wrapper ends leftovers with `kill -KILL -1` inside its container; the fake contains nothing."""
    container = fake.create_container(ContainerSpec(BASE_IMAGE, ("sh", "-c", "sleep 1; kill -KILL -1")))
    with pytest.raises(FakeEngineError, match="kill -1"):
        fake.start(container)
    assert not fake.state(container).running
