"""gVisor (`[sandbox] runtime = "runsc"`): code meets gVisor's kernel, the profile and the mapping still hold,
and a runsc that is missing or not set up is refused in one line, never replaced by runc.

`make test` also runs all of tests/security a second time under runsc (WORKBENCH_SANDBOX__RUNTIME=runsc);
these tests ask for gVisor themselves, so they run in the first pass too.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need
from tests.sandbox.conftest import Recorder, make_settings, run, still_works
from workbench.sandbox.spec import ContainerSpec

GVISOR_KERNEL = "4.4.0"  # what gVisor's Sentry reports as its release


def gvisor_settings(**sandbox):
    return make_settings(**{"timeout": 30, **sandbox, "runtime": "runsc"})


@pytest.fixture(scope="module")
def gvisor_ready(engine_ready):
    from workbench.errors import WorkbenchError
    from workbench.sandbox.engine import connect

    try:
        connect(gvisor_settings()).close()
    except WorkbenchError as exc:
        need(False, f"gVisor ({exc.one_line()})")
    return True


@pytest.fixture(scope="module")
def gv_project(tmp_path_factory):
    from workbench.project import Project

    return Project.init(tmp_path_factory.mktemp("gvisor") / "proj")  # under pytest's 0700 folders: see below


@pytest.fixture(scope="module")
def gv_recorder():
    return Recorder()


@pytest.fixture(scope="module")
def gbox(gvisor_ready, gv_project, gv_recorder):
    from workbench.sandbox import Sandbox

    box = Sandbox.open(gv_project, bus=gv_recorder.bus, settings=gvisor_settings(pids=128),
                       session_id="gvisor", actor="user:test")
    yield box
    box.close()


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_code_meets_gvisors_kernel_not_the_hosts(gbox, gv_recorder):
    result, _ = run(gbox, "shell", "uname -r; id -u")
    kernel, uid = result.stdout.text().split()
    assert kernel == GVISOR_KERNEL and kernel != os.uname().release
    assert uid != "0"
    assert gbox.engine.runtime == "runsc"
    # the record says which runtime the code ran under
    assert gv_recorder.of("sandbox.started")[0].payload["limits"]["runtime"] == "runsc"


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_the_profile_holds_in_execs_and_in_the_first_process(gbox):
    """runsc skips the OCI profile for exec'd processes: Workbench installs it in each (see gvisor.py)."""
    from tests.security.test_userns import DENIED, USERNS_PROBE, check_refused

    result, _ = run(gbox, "shell", USERNS_PROBE)  # a one-off execution is an exec
    check_refused(result)
    probe = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" + "".join(
        f"r = libc.syscall({nr}, 0, 0, 0, 0, 0)\nprint({name!r}, r, ctypes.get_errno())\n" for name, nr in DENIED.items())
    probe += "print('nnp', libc.prctl(39, 0, 0, 0, 0), 'seccomp', libc.prctl(21, 0, 0, 0, 0))\n"
    result, _ = run(gbox, "python", probe)
    assert result.ok, result
    lines = dict(line.split(" ", 1) for line in result.stdout.text().splitlines())
    for name in DENIED:
        assert lines[name] == "-1 1", f"{name} not denied with EPERM under gVisor: {lines}"
    assert lines["nnp"] == "1 seccomp 2"  # no-new-privileges and a filter, as gVisor's kernel reports them

    # A container's first process (an install's command is one) is filtered the same way.
    from workbench.sandbox import BASE_IMAGE

    engine = gbox.engine
    container = engine.create_container(ContainerSpec(
        BASE_IMAGE, ("sh", "-c", "unshare -r true 2>/dev/null && echo ALLOWED; uname -r"), user="1000:1000",
        network="none", cap_drop=("ALL",)))
    try:
        engine.start(container)
        assert engine.wait(container, timeout=60) == 0
        out = b"".join(engine.api.logs(container, stream=False, stdout=True, stderr=True).splitlines(True))
    finally:
        engine.remove(container)
    assert b"ALLOWED" not in out and GVISOR_KERNEL.encode() in out


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_no_gvisor_process_is_a_real_host_user(gbox):
    if os.getuid() != 0 or gbox.engine.rootless:
        pytest.skip("the mapping applies to a rootful engine run by root")
    run(gbox, "shell", "echo from-code > made-by-gvisor.txt")
    owner = gbox.workspace_owner()
    made = gbox.project.workspace / "made-by-gvisor.txt"
    assert os.stat(made).st_uid == owner[0] >= 100000  # the same high uid as under runc
    with pytest.raises(KeyError):
        pwd.getpwuid(owner[0])
    assert made.read_text() == "from-code\n"
    made.unlink()
    # On the host the container is runsc's gofer and Sentry: never a uid an account has, filtered, NNP.
    cid = gbox.container
    found = subprocess.run(["pgrep", "-f", cid], capture_output=True, text=True).stdout.split()
    procs = {pid: (open(f"/proc/{pid}/comm").read().strip(), status_of(int(pid)))
             for pid in found if Path(f"/proc/{pid}").exists()}
    host_userns = os.readlink("/proc/self/ns/user")
    gvisor_procs = {pid: st for pid, (comm, st) in procs.items() if comm == "exe"}  # runsc-gofer/runsc-sandbox
    assert gvisor_procs, procs
    sentries = {pid: st for pid, st in gvisor_procs.items() if int(st["Uid"].split()[0]) != 0}
    assert sentries, gvisor_procs  # the gofer is root by gVisor's design (chrooted, filtered); see gvisor.py
    for pid, st in gvisor_procs.items():
        uid = int(st["Uid"].split()[0])
        assert uid in (0, 65534), (pid, st["Uid"])  # never 1000 or any account's uid
        assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2"
    for pid in sentries:  # the Sentry, holding code's processes: nobody, in a user namespace of its own
        assert os.readlink(f"/proc/{pid}/ns/user") != host_userns
    still_works(gbox)


@pytest.mark.engine
@pytest.mark.timeout(180)
def test_a_warm_session_runs_under_gvisor_as_the_same_uid(gbox):
    first, _ = run(gbox, "python", "import os\nx = 41\nprint(os.uname().release, os.getuid())", session="gv")
    kernel, uid = first.stdout.text().split()
    assert kernel == GVISOR_KERNEL
    if gbox.workspace_owner() is not None:
        assert int(uid) == gbox.workspace_owner()[0]  # the account-less uid, as in one-off executions
    second, _ = run(gbox, "python", "print(x + 1)", session="gv")
    assert second.stdout.text() == "42\n"
    still_works(gbox)


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_a_container_made_under_another_runtime_is_refused(gvisor_ready):
    """The engine is asked for gVisor but makes the container with its default runtime (runc): refused and
    removed before it starts."""
    from workbench.config import Settings
    from workbench.errors import EngineUnavailable
    from workbench.sandbox import BASE_IMAGE
    from workbench.sandbox.engine import DockerEngine, find_endpoint

    runc_endpoint = find_endpoint(Settings())
    engine = DockerEngine(runc_endpoint, runtime="runsc")
    try:
        with pytest.raises(EngineUnavailable) as refused:
            engine.create_container(ContainerSpec(BASE_IMAGE, ("true",), labels={"wb-test": "gvisor"},
                                                  network="none"))
        assert "made the container under 'runc'" in refused.value.one_line()
        assert "\n" not in refused.value.one_line()
        assert engine.list_containers({"wb-test": "gvisor"}) == []
    finally:
        engine.close()


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_a_missing_runsc_is_one_line_and_nothing_runs(engine_ready, gv_project, workbench_cmd):
    from workbench.project import Project

    project = Project.init(gv_project.root.parent / "mine")  # made here, so trusted: no other line
    env = {**os.environ, "WORKBENCH_SANDBOX__RUNTIME": "/nonexistent/gvisor/runsc"}
    done = subprocess.run([*workbench_cmd, "exec", "-p", str(project.root), "--lang", "shell", "-c",
                           "echo RAN"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 3, done
    assert "RAN" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "/nonexistent/gvisor/runsc does not exist" in lines[0]
    assert "workbench setup --runsc" in lines[0] and 'runtime = ""' in lines[0]


@pytest.mark.engine
@pytest.mark.timeout(60)
def test_runsc_without_its_service_is_refused(engine_ready, monkeypatch):
    from workbench.errors import EngineUnavailable
    from workbench.sandbox import gvisor
    from workbench.sandbox.engine import connect

    monkeypatch.setattr(gvisor, "find_runsc", lambda runtime: Path("/usr/bin/runsc"))  # installed or not
    monkeypatch.setattr(gvisor, "GVISOR_SOCKET", "podman-runsc-not-started.sock")
    settings = gvisor_settings()
    if gvisor.podman_socket(connect(make_settings(runtime="")).endpoint) is None:
        pytest.skip("the engine is not a local Podman")
    with pytest.raises(EngineUnavailable) as refused:
        connect(settings)
    line = refused.value.one_line()
    assert "its Podman service is not set up" in line and "setup-engine.sh --runsc" in line


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_a_project_under_a_0700_folder_runs_under_gvisor(gvisor_ready, tmp_path):
    """No user namespace under gVisor (see gvisor.flatten_userns): runsc's gofer reaches a project under a
    folder only its owner may enter (a home folder, a mktemp folder), and code's files still belong to
    the account-less uid."""
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    project = Project.init(locked / "proj")
    with Sandbox.open(project, settings=gvisor_settings()) as box:
        result, _ = run(box, "shell", "uname -r; echo x > made.txt")
        assert result.ok and result.stdout.text().strip() == GVISOR_KERNEL, result
        owner = box.workspace_owner()
        if owner is not None:
            assert os.stat(project.workspace / "made.txt").st_uid == owner[0] >= 100000


def test_runtime_names():
    from workbench.errors import ConfigError
    from workbench.sandbox import gvisor

    assert gvisor.requested("") == "" and gvisor.requested("runc") == ""
    assert gvisor.requested("runsc") == "runsc" and gvisor.requested("/opt/gvisor/runsc") == "runsc"
    with pytest.raises(ConfigError) as bad:
        gvisor.requested("kata")
    assert "\n" not in bad.value.one_line() and '"runsc" (gVisor)' in bad.value.one_line()


def test_the_compiled_profile_follows_capabilities():
    from workbench.sandbox import gvisor, seccomp

    assert gvisor.capabilities(["ALL"], None) == frozenset()
    assert gvisor.capabilities(None, None) == gvisor.DEFAULT_CAPS
    assert gvisor.capabilities(["SYS_CHROOT"], ["NET_RAW"]) == gvisor.DEFAULT_CAPS - {"CAP_SYS_CHROOT"} | {
        "CAP_NET_RAW"}
    none = gvisor.compiled_profile(seccomp.profile_text(), frozenset())
    chroot = gvisor.compiled_profile(seccomp.profile_text(), frozenset({"CAP_SYS_CHROOT"}))
    assert none and len(none) % 8 == 0 and none != chroot  # chroot is allowed only with CAP_SYS_CHROOT


@pytest.mark.engine
@pytest.mark.timeout(120)
def test_exec_runtime_flag_runs_under_gvisor(gvisor_ready, tmp_path, workbench_cmd):
    from workbench.project import Project

    project = Project.init(tmp_path / "proj")
    done = subprocess.run([*workbench_cmd, "exec", "-p", str(project.root), "--runtime", "runsc", "--lang",
                           "shell", "-c", "uname -r"], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == GVISOR_KERNEL
