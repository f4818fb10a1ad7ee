"""Run-time installs from local sources (issue 11 item 3), against the real engine, with no network at all.

Every repository is made here: hand-written wheels (a wheelhouse, and a PEP 503 index served on the host's
loopback), a .deb built with dpkg-deb and an R source package built with `R CMD build`, both inside the
sandbox image. After each install: `package.installed` was emitted, every install container had
network_mode "none" (a source served over HTTP is reached through the egress proxy's socket, and only that
source), user code still has no network, and the package works in a later execution and a later session.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.sandbox import repos
from tests.sandbox.conftest import Recorder, run
from workbench import trust

pytestmark = pytest.mark.engine

# Run in the sandbox: the interfaces it has, and whether anything answers (the host's bridge address, the
# public internet, a name lookup).
NO_NETWORK = """
import os, socket
print(sorted(os.listdir('/sys/class/net')))
for host, port in (('10.88.0.1', 80), ('1.1.1.1', 53), ('host.containers.internal', 80)):
    try:
        socket.create_connection((host, port), timeout=2).close(); print('reached', host)
    except OSError:
        pass
"""


def _config(project, **install):
    lines = ["[install]"] + [f"{key} = {json.dumps(value)}" for key, value in install.items()]
    (project.root / ".workbench" / "config.toml").write_text("\n".join(lines) + "\n")
    trust.trust(project)  # the user's own edit, then `workbench trust` (an edited config is restricted until then)


def _watch_install_containers(box, monkeypatch):
    """The specs of the install step's containers, as handed to the engine."""
    from workbench.sandbox.policy import LABEL_ROLE

    specs = []
    create = box.engine.create_container

    def recording(spec):
        if spec.labels.get(LABEL_ROLE) == "install":
            specs.append(spec)
        return create(spec)

    monkeypatch.setattr(box.engine, "create_container", recording)
    return specs


def _assert_no_network(box):
    result, _ = run(box, "python", NO_NETWORK)
    assert result.ok, result.stderr.text()
    assert result.stdout.kept == b"['lo']\n"


def _installed(recorder, manager):
    return {(e.payload["name"], e.payload["version"]) for e in recorder.of("package.installed")
            if e.payload["manager"] == manager}


@pytest.fixture(scope="module")
def builder(engine_ready, tmp_path_factory):
    """A sandbox used only to build the .deb and the R package inside the image."""
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    project = Project.init(tmp_path_factory.mktemp("builder") / "proj")
    box = Sandbox.open(project)
    yield box, project.workspace
    box.close()


def test_pip_from_a_wheelhouse_gets_no_network(engine_ready, project, tmp_path, monkeypatch):
    from workbench.sandbox import Sandbox

    house = tmp_path / "wheelhouse"
    repos.wheels(house)
    _config(project, pip_find_links=str(house))
    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus) as box:
        specs = _watch_install_containers(box, monkeypatch)
        result = box.install("pip", ["wbdemo-a"])
        assert result.ok, result.output
        assert {(p.name, p.version) for p in result.installed} == {("wbdemo-a", "1.0"), ("wbdemo-b", "0.5")}
        assert specs and all(s.network == "none" for s in specs)
        assert not _egress_mounted(specs[-1]) and result.reached == ()  # folders only: no way out at all
        assert all(m.read_only for m in specs[-1].mounts if m.source == str(house))
        check, _ = run(box, "python", "import wbdemo_a; print(wbdemo_a.VALUE)")  # a later execution
        assert check.stdout.kept == b"a+b\n", check.stderr.text()
        _assert_no_network(box)
    assert _installed(recorder, "pip") == {("wbdemo-a", "1.0"), ("wbdemo-b", "0.5")}
    with Sandbox.open(project) as box:  # a later session
        check, _ = run(box, "python", "import wbdemo_a, sys; print(wbdemo_a.VALUE, sys.prefix)")
    assert check.stdout.kept == b"a+b /workspace/.venv\n", check.stderr.text()


def _egress_mounted(spec) -> bool:
    from workbench.sandbox.egress import SOCKET_MOUNT

    return spec.mount_at(SOCKET_MOUNT) is not None


def test_pip_from_an_index_on_the_host_loopback(engine_ready, project, tmp_path, monkeypatch):
    """The index listens on 127.0.0.1 only; the install container, with no network, reaches it (and only it)
    through the egress proxy."""
    from workbench.sandbox import Sandbox

    served = repos.Served(repos.simple_index(tmp_path / "index"))
    try:
        _config(project, pip_index_url=f"{served.url}/simple")
        recorder = Recorder()
        with Sandbox.open(project, bus=recorder.bus) as box:
            specs = _watch_install_containers(box, monkeypatch)
            result = box.install("pip", ["wbdemo-a==1.0"])
            assert result.ok, result.output
            assert specs and all(s.network == "none" for s in specs)
            assert _egress_mounted(specs[-1])
            assert result.reached == (f"127.0.0.1:{served.port}",) and result.refused == ()
            _assert_no_network(box)
    finally:
        served.close()
    assert "/simple/wbdemo-a/" in served.paths and "/simple/wbdemo-b/" in served.paths  # resolved from it
    assert any(p.startswith("/files/wbdemo_b-0.5") for p in served.paths)
    assert _installed(recorder, "pip") == {("wbdemo-a", "1.0"), ("wbdemo-b", "0.5")}
    with Sandbox.open(project) as box:  # a later session, the index gone
        check, _ = run(box, "python", "import wbdemo_a; print(wbdemo_a.VALUE)")
    assert check.stdout.kept == b"a+b\n", check.stderr.text()


def _wb(workbench_cmd, *args):
    return subprocess.run([*workbench_cmd, *args], capture_output=True, timeout=300)


def test_cli_install_from_a_loopback_index_is_audited(engine_ready, project, tmp_path, workbench_cmd):
    served = repos.Served(repos.simple_index(tmp_path / "index"))
    try:
        _config(project, pip_index_url=f"{served.url}/simple")
        done = _wb(workbench_cmd, "install", "-p", str(project.root), "--manager", "pip", "wbdemo-a")
    finally:
        served.close()
    assert done.returncode == 0, done.stderr.decode()
    assert b"installed wbdemo-a 1.0 (pip)" in done.stdout and b"installed wbdemo-b 0.5 (pip)" in done.stdout
    done = _wb(workbench_cmd, "exec", "-p", str(project.root), "--lang", "python", "-c",
               "import wbdemo_a; print(wbdemo_a.VALUE)")
    assert done.returncode == 0 and done.stdout == b"a+b\n", done.stderr.decode()
    export = _wb(workbench_cmd, "audit", "export", "-p", str(project.root))
    assert export.returncode == 0, export.stderr.decode()
    payloads = [json.loads(line).get("payload", {}) for line in export.stdout.decode().splitlines()
                if '"package.installed"' in line]
    assert {"name": "wbdemo-a", "version": "1.0", "manager": "pip"} in payloads


def test_cli_bad_input_gives_one_line_and_its_own_exit_code(engine_ready, project, tmp_path, workbench_cmd):
    cases = [
        ({"pip_find_links": str(tmp_path / "wheels")}, ["wbdemo-a;rm"], 2, b"not a package name"),
        ({"pip_find_links": str(tmp_path / "missing")}, ["wbdemo-a"], 5, b"folder missing"),
        ({"pip_index_url": f"http://127.0.0.1:{repos.free_port()}/simple"}, ["wbdemo-a"], 5, b"unreachable"),
        ({"apt_mirror": f"http://127.0.0.1:{repos.free_port()}/debian"}, ["jq"], 5, b"unreachable"),
        ({"pip_find_links": str(tmp_path / "wheels"), "allow_hosts": "x:y"}, ["wbdemo-a"], 2, b"allow_hosts"),
        ({"pip_find_links": str(tmp_path / "wheels")}, ["no-such-package"], 1, b"pip install failed"),
    ]
    repos.wheels(tmp_path / "wheels")
    for install, packages, code, words in cases:
        _config(project, **install)
        manager = "apt" if "apt_mirror" in install else "pip"
        done = _wb(workbench_cmd, "install", "-p", str(project.root), "--manager", manager, *packages)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == code, (install, done.stderr.decode())
        assert last.startswith(b"workbench: error: ") and words in last, last
        if code != 1:  # a package manager failure may print its log first; the others say one line
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr.decode()


def test_apt_from_a_local_mirror_folder(engine_ready, project, builder, monkeypatch):
    from workbench.sandbox import Sandbox
    from workbench.sandbox.sandbox import project_image

    box_b, workspace = builder
    mirror = repos.apt_flat_repo(box_b, workspace)
    _config(project, apt_mirror=f"file://{mirror}")
    recorder = Recorder()
    try:
        with Sandbox.open(project, bus=recorder.bus) as box:
            specs = _watch_install_containers(box, monkeypatch)
            result = box.install("apt", ["wb-hello"])
            assert result.ok, result.output
            assert "deb [trusted=yes] file:/mnt/workbench-apt ./" in result.output  # the only source
            assert specs and all(s.network == "none" for s in specs)
            assert box.image == project_image(project)
            check, _ = run(box, "shell", "cat /usr/share/wb-hello/hello.txt")
            assert check.stdout.kept == b"hello from wb-hello\n", check.stderr.text()
            _assert_no_network(box)
        assert _installed(recorder, "apt") == {("wb-hello", "1.0-1")}
        with Sandbox.open(project) as box:  # a later session starts from the project image
            check, _ = run(box, "shell", "dpkg-query -W -f='${Version}' wb-hello; ls /etc/apt/sources.list.d")
            assert check.stdout.kept.startswith(b"1.0-1"), check.stderr.text()
    finally:
        from workbench.config import Settings
        from workbench.sandbox.engine import connect

        engine = connect(Settings())
        try:
            engine.remove_image(project_image(project))
        finally:
            engine.close()


def test_r_from_a_local_cran_folder(engine_ready, project, builder, monkeypatch):
    from workbench.sandbox import Sandbox

    box_b, workspace = builder
    cran = repos.cran_repo(box_b, workspace)
    _config(project, cran_repo=f"file://{cran}")
    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus) as box:
        specs = _watch_install_containers(box, monkeypatch)
        result = box.install("r", ["wbhello"])
        assert result.ok, result.output
        assert specs and all(s.network == "none" for s in specs)
        check, _ = run(box, "r", "library(wbhello); cat(hello(), '\\n')")
        assert check.stdout.kept == b"hello from wbhello \n", check.stderr.text()
        _assert_no_network(box)
    assert _installed(recorder, "r") == {("wbhello", "0.1.0")}
    with Sandbox.open(project) as box:  # a later session
        check, _ = run(box, "r", "cat(as.character(packageVersion('wbhello')), '\\n')")
    assert check.stdout.kept == b"0.1.0 \n", check.stderr.text()


def test_r_from_a_cran_repository_served_over_http(engine_ready, project, builder, monkeypatch):
    """A CRAN-like repository on the host's loopback: R's libcurl goes through the egress proxy."""
    from workbench.sandbox import Sandbox

    box_b, workspace = builder
    served = repos.Served(repos.cran_repo(box_b, workspace))
    _config(project, cran_repo=served.url)
    recorder = Recorder()
    try:
        with Sandbox.open(project, bus=recorder.bus) as box:
            specs = _watch_install_containers(box, monkeypatch)
            result = box.install("r", ["wbhello"])
            assert result.ok, result.output
            assert specs and all(s.network == "none" for s in specs)
            assert _egress_mounted(specs[-1]) and result.reached == (f"127.0.0.1:{served.port}",)
            check, _ = run(box, "r", "library(wbhello); cat(hello(), '\\n')")
            assert check.stdout.kept == b"hello from wbhello \n", check.stderr.text()
            _assert_no_network(box)
    finally:
        served.close()
    assert "/src/contrib/wbhello_0.1.0.tar.gz" in served.paths
    assert _installed(recorder, "r") == {("wbhello", "0.1.0")}
    (event,) = recorder.of("install.egress")
    assert event.payload["reached"] == [f"127.0.0.1:{served.port}"] and event.payload["refused"] == []
