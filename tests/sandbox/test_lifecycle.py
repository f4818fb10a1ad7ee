"""Container lifecycle, installs, and the `workbench exec` / `install` commands, against the real engine."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from tests.sandbox.conftest import run
from workbench.sandbox.spec import ContainerSpec

pytestmark = pytest.mark.engine


def _conmon_count() -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as comm:
                    count += comm.read().strip() == "conmon"
            except OSError:
                pass
    return count


def _containers(engine, project):
    from workbench.sandbox.policy import LABEL_PROJECT

    return engine.list_containers({LABEL_PROJECT: project.id})


def test_stale_container_from_a_crash_is_removed(engine_ready, project):
    from workbench.sandbox import Sandbox
    from workbench.sandbox.sandbox import ROLE_EXEC

    with Sandbox.open(project) as box:
        # Pretend a crashed process (a pid that cannot exist) left a container behind.
        spec_labels = box.labels(ROLE_EXEC) | {"io.workbench.owner": f"{socket.gethostname()}:99999999"}
        stale = box.engine.create_container(ContainerSpec(box.image, ("true",), labels=spec_labels))
    with Sandbox.open(project) as box:
        assert run(box, "python", "print(1)")[0].ok
        ids = [c.id for c in _containers(box.engine, project)]
        assert stale not in ids
        assert len(ids) == 1  # only this session's


def test_never_started_containers_of_any_project_are_removed_once_their_owner_is_gone(engine_ready, project,
                                                                                    tmp_path):
    """A process killed between creating a container and starting it leaves a "created" container of a
    project that may never be opened again: the next Sandbox.open, of any project, removes it. A running
    one (a warm-session runner outlives its CLI process by design) and another live owner's are kept."""
    from workbench.project import Project
    from workbench.sandbox import Sandbox
    from workbench.sandbox.sandbox import ROLE_EXEC

    other = Project.init(tmp_path / "other")
    with Sandbox.open(other) as box:
        dead = box.labels("kernel") | {"io.workbench.owner": f"{socket.gethostname()}:99999999"}
        alive = box.labels("kernel")  # this process: alive
        spec = ContainerSpec(box.image, ("true",), network="none")
        orphan = box.engine.create_container(spec.with_labels(dead))
        kept = box.engine.create_container(spec.with_labels(alive))
    try:
        with Sandbox.open(project) as box:
            ids = {c.id for c in box.engine.list_containers({"io.workbench.project": other.id})}
            assert orphan not in ids and kept in ids
            assert box.labels(ROLE_EXEC)["io.workbench.project"] == project.id
    finally:
        with Sandbox.open(project) as box:
            box.engine.remove(kept)


def test_no_leaked_containers_or_conmon_after_many_executions(engine_ready, project):
    from workbench.sandbox import Sandbox

    local = os.path.exists("/run/podman/podman.sock") and os.geteuid() == 0
    before = _conmon_count()
    box = Sandbox.open(project)
    engine_probe = box.engine
    for i in range(50):
        result, _ = run(box, "python", f"print({i})")
        assert result.ok and result.stdout.kept == f"{i}\n".encode()
    box.close()
    from workbench.config import Settings
    from workbench.sandbox.engine import connect

    engine = connect(Settings())
    try:
        assert _containers(engine, project) == []
    finally:
        engine.close()
    assert engine_probe is not None
    if local:
        # Podman keeps two conmon per exec for exit_command_delay (10 s via setup-engine.sh).
        deadline = time.monotonic() + 30
        while _conmon_count() > before and time.monotonic() < deadline:
            time.sleep(1)
        assert _conmon_count() <= before


def test_pip_install_persists_into_later_sandboxes(engine_ready, project):
    from tests.sandbox.conftest import Recorder
    from workbench.sandbox import Sandbox

    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus) as box:
        result = box.install("pip", ["six"])
        assert result.ok, result.output
        assert any(p.name == "six" for p in result.installed)
    events = [e.payload for e in recorder.events if e.kind == "package.installed"]
    assert any(e["name"] == "six" and e["manager"] == "pip" and e["version"] for e in events)
    with Sandbox.open(project) as box:  # a new container: the venv in the workspace is still there
        check, _ = run(box, "python", "import six, sys; print(sys.prefix)")
    assert check.ok, check.stderr.text()
    assert check.stdout.kept == b"/workspace/.venv\n"


def test_install_rejects_options_smuggled_as_packages(engine_ready, project):
    from workbench.errors import UsageError
    from workbench.sandbox import Sandbox

    with Sandbox.open(project) as box, pytest.raises(UsageError):
        box.install("pip", ["--index-url=http://evil.example/simple", "six"])


# --- the command line --------------------------------------------------------------------------------
def _wb(workbench_cmd, *args, env=None, input=None):
    return subprocess.run([*workbench_cmd, *args], capture_output=True, timeout=120, env=env, input=input)


def test_cli_exec_streams_and_passes_the_exit_code(engine_ready, project, workbench_cmd):
    done = _wb(workbench_cmd, "exec", "-p", str(project.root), "--lang", "python",
               "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(5)")
    assert done.returncode == 5
    assert done.stdout == b"out\n" and done.stderr == b"err\n"


def test_cli_exec_runs_a_file(engine_ready, project, workbench_cmd, tmp_path):
    script = tmp_path / "job.R"
    script.write_text("cat(sum(1:10), '\\n')")
    done = _wb(workbench_cmd, "exec", "-p", str(project.root), "--lang", "r", str(script))
    assert done.returncode == 0 and b"55" in done.stdout


@pytest.mark.parametrize("args, env, code, words", [
    (["--lang", "cobol", "-c", "x"], {}, 2, "unknown language"),
    (["--lang", "python", "/no/such/file.py"], {}, 2, "no such file"),
    (["--lang", "python"], {}, 2, "no code"),
    (["--lang", "python", "-c", "print(1)"], {"DOCKER_HOST": "unix:///nonexistent/engine.sock"}, 3, "engine"),
    (["--lang", "python", "-c", "print(1)"], {"WORKBENCH_SANDBOX__IMAGE": "localhost/no-such-image:0"}, 4,
     "workbench setup"),
    (["--lang", "python", "--timeout", "1", "-c", "while True: pass"], {}, 124, "timed out"),
])
def test_cli_errors_are_one_line_with_distinct_codes(engine_ready, project, workbench_cmd, args, env, code, words):
    done = _wb(workbench_cmd, "exec", "-p", str(project.root), *args, env={**os.environ, **env})
    assert done.returncode == code, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines
