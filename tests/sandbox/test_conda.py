"""conda as a package manager (issue 18 item 6): py-rattler in the install container, a prefix at
/workspace/.conda, activated for later executions and warm sessions.

The channel is made here (tests/sandbox/conda_channel.py: two real noarch packages, one depending on the
other, and a repodata.json per subdir). Against the real engine: install from a folder channel (no way out
at all) and from a channel served on the host's loopback (reached through the egress proxy, and only it),
use the packages from a later one-off execution and a later warm session, and read `package.installed`
(name, version, build, channel) back from the audit log. Bad input (a folder that is not a channel, an
unknown package) is one line, and the workspace and the log stay intact. The host's read-back of
conda-meta is tested on its own against planted records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need
from tests.sandbox import conda_channel, repos
from tests.sandbox.conftest import Recorder, run
from workbench import trust

ROOT = Path(__file__).resolve().parents[2]


def _config(project, **install):
    lines = ["[install]"] + [f"{key} = {json.dumps(value)}" for key, value in install.items()]
    (project.root / ".workbench" / "config.toml").write_text("\n".join(lines) + "\n")
    trust.trust(project)  # the user's own edit, then `workbench trust`


def _settings(**install):
    from workbench.config import InstallSettings, Settings

    return Settings(install=InstallSettings(**install))


def _wb(workbench_cmd, *args):
    return subprocess.run([*workbench_cmd, *args], capture_output=True, timeout=300)


@pytest.fixture
def rattler_ready(engine_ready):
    from workbench.sandbox.managers import conda

    need(conda.rattler_ready(conda.rattler_site()),
         f"py-rattler {conda.RATTLER_VERSION} in the user cache (run: bash packaging/rattler-wheel.sh)")


@pytest.fixture
def channel(tmp_path):
    return conda_channel.channel(tmp_path / "channel")


# --- without the engine -------------------------------------------------------------------------------
def test_it_is_a_registered_manager_with_its_own_source():
    from workbench.sandbox.managers import MANAGERS

    conda = MANAGERS.get("conda")
    assert conda.sources == ("conda_channels",) and conda.target == "workspace"
    assert "/workspace/.conda" in conda.description


@pytest.mark.parametrize("value, expected", [
    ("", ["https://conda.anaconda.org/conda-forge"]),
    ("file:///srv/a  /srv/b", ["file:///srv/a", "file:///srv/b"]),
    (["/srv/a", "https://mirror.lan/conda-forge", "/srv/a"], ["file:///srv/a", "https://mirror.lan/conda-forge"]),
])
def test_channels_come_in_priority_order(value, expected):
    from workbench.sandbox.managers.conda import channels

    assert channels(_settings(conda_channels=value)) == expected


@pytest.mark.parametrize("spec", ["numpy", "numpy>=1.26,<2", "python=3.12", "numpy=1.26.4=py312h_0",
                                  "r-base==4.3.*", "_libgcc_mutex", "hello-conda!=1.1"])
def test_conda_specs_pass(spec):
    from workbench.sandbox.managers import MANAGERS

    assert MANAGERS.get("conda").check_packages([spec]) == [spec]


@pytest.mark.parametrize("spec", ["--channel=x", "conda-forge::numpy", "numpy 1.26", "numpy;rm -rf /",
                                  "https://x/y.conda", "numpy[build=py312]", "", "numpy>=1.26,"])
def test_anything_but_a_conda_spec_is_one_line(spec):
    from workbench.errors import UsageError
    from workbench.sandbox.managers import MANAGERS

    with pytest.raises(UsageError) as caught:
        MANAGERS.get("conda").check_packages([spec])
    assert "not a conda package spec" in caught.value.one_line()


def test_a_folder_channel_is_mounted_read_only_and_opens_no_way_out(channel):
    from workbench.sandbox.managers import MANAGERS
    from workbench.sandbox.managers.conda import channel_mounts, channel_problem
    from workbench.sandbox.managers.sources import NOWHERE

    settings = _settings(conda_channels=[str(channel)])
    assert MANAGERS.get("conda").reachable(settings) == NOWHERE
    assert channel_mounts([f"file://{channel}"]) == {str(channel): {"bind": str(channel), "mode": "ro"}}
    assert channel_problem(f"file://{channel}") is None  # a real channel passes


def test_a_url_channel_opens_exactly_its_host_and_port():
    from workbench.sandbox.managers import MANAGERS

    settings = _settings(conda_channels="https://mirror.lan:8443/conda-forge http://127.0.0.1:8080/ch")
    assert MANAGERS.get("conda").reachable(settings) == "127.0.0.1:8080, mirror.lan:8443"


def test_a_folder_that_is_not_a_channel_is_one_line_naming_the_setting(tmp_path):
    from workbench.errors import ConfigError
    from workbench.sandbox.errors import SourceUnreachable
    from workbench.sandbox.managers import MANAGERS

    (tmp_path / "not-a-channel" / "linux-64").mkdir(parents=True)
    with pytest.raises(ConfigError) as caught:
        MANAGERS.get("conda").preflight(_settings(conda_channels=str(tmp_path / "not-a-channel")))
    line = caught.value.one_line()
    assert "[install] conda_channels" in line and "not a conda channel" in line and "\n" not in line
    with pytest.raises(SourceUnreachable) as caught:
        MANAGERS.get("conda").preflight(_settings(conda_channels=str(tmp_path / "missing")))
    assert "[install] conda_channels" in caught.value.one_line() and caught.value.exit_code == 5
    findings = MANAGERS.get("conda").check(_settings(conda_channels=str(tmp_path / "not-a-channel")))
    assert findings[0].status == "warn" and "not a conda channel" in findings[0].detail


def test_doctor_leaves_conda_out_until_a_channel_is_configured(channel):
    from workbench.sandbox.managers import MANAGERS

    assert MANAGERS.get("conda").check(_settings()) == []
    names = [f.name for f in MANAGERS.get("conda").check(_settings(conda_channels=str(channel)))]
    assert names == ["install source: conda channel", "conda installer"]


def _record(name="hello-conda", version="1.0", build="0", channel="file:///srv/channel/", **extra):
    return json.dumps({"name": name, "version": version, "build": build, "channel": channel, "files": [],
                       **extra})


def test_the_read_back_takes_records_and_leaves_planted_things_unfollowed(tmp_path):
    from workbench.sandbox.managers.conda import prefix_packages

    workspace = tmp_path / "workspace"
    meta = workspace / ".conda" / "conda-meta"
    meta.mkdir(parents=True)
    (meta / "hello-conda-1.0-0.json").write_text(_record())
    (meta / "creds-1.0-0.json").write_text(_record("creds", channel="https://user:token@mirror.lan/ch/"))
    (meta / "red-1.0-0.json").write_text(_record("\x1b[31mred"))
    (meta / "list-1.0-0.json").write_text("[1, 2]")
    (meta / "broken-1.0-0.json").write_text("{not json")
    (tmp_path / "outside.json").write_text(_record("outside"))
    (meta / "linked-1.0-0.json").symlink_to(tmp_path / "outside.json")
    os.mkfifo(meta / "fifo-1.0-0.json")
    (meta / "history").write_text("not a record\n")
    listing = prefix_packages(workspace)
    assert set(listing.packages) == {"hello-conda", "creds"}
    hello = listing.packages["hello-conda"]
    assert (hello.version, hello.build, hello.channel) == ("1.0", "0", "file:///srv/channel/")
    assert listing.packages["creds"].channel == "https://***@mirror.lan/ch/"
    notes = " ".join(listing.notes)
    assert "red-1.0-0.json" in notes and "\x1b" not in notes
    assert "linked-1.0-0.json" in notes and "fifo-1.0-0.json" in notes and "not JSON" in notes


def test_channel_credentials_are_never_printed_or_logged(tmp_path, capsys):
    import importlib.util

    from workbench.sandbox.managers.conda import prefix_packages, shown_channel

    token = "https://conda.anaconda.org/t/tk-123456/private/"
    assert shown_channel(token) == "https://conda.anaconda.org/t/***/private/"
    assert shown_channel("https://user:pw@mirror.lan/ch") == "https://***@mirror.lan/ch"
    meta = tmp_path / "workspace" / ".conda" / "conda-meta"
    meta.mkdir(parents=True)
    (meta / "a-1.0-0.json").write_text(_record("a", channel=token))
    assert prefix_packages(tmp_path / "workspace").packages["a"].channel == shown_channel(token)
    # The container side masks what it prints the same way (its output reaches the terminal and the result).
    spec = importlib.util.spec_from_file_location("conda_install", ROOT / "workbench" / "sandbox" / "container"
                                                  / "conda_install.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.say(f"solving x from {token} and https://user:pw@mirror.lan/ch")
    printed = capsys.readouterr().out
    assert "tk-123456" not in printed and "pw" not in printed and printed.count("***") == 2


def test_a_symlinked_prefix_is_a_note_never_followed(tmp_path):
    from workbench.sandbox.managers.conda import prefix_packages

    elsewhere = tmp_path / "elsewhere" / "conda-meta"
    elsewhere.mkdir(parents=True)
    (elsewhere / "hello-conda-1.0-0.json").write_text(_record())
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / ".conda").symlink_to(elsewhere.parent)
    listing = prefix_packages(workspace)
    assert listing.packages == {} and listing.notes


def test_what_changed_is_new_or_different_version_build_or_channel():
    from workbench.sandbox.managers.conda import CondaPackage, changed

    old = CondaPackage("a", "1.0", "0", "file:///c/")
    before = {"a": old, "b": CondaPackage("b", "1.0", "0", "file:///c/")}
    after = {"a": old, "b": CondaPackage("b", "1.0", "1", "file:///c/"), "c": CondaPackage("c", "2", "0", "")}
    assert set(changed(before, after)) == {"b", "c"}


def test_executions_see_the_prefix_activated_only_once_it_exists(tmp_path):
    from workbench.sandbox import policy
    from workbench.sandbox.container import interpreters

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    assert policy.execution_env(workspace) == policy.BASE_ENV
    (workspace / ".conda").symlink_to(tmp_path)  # a symlink code left is not followed
    (tmp_path / "conda-meta").mkdir()
    assert policy.execution_env(workspace) == policy.BASE_ENV
    (workspace / ".conda").unlink()
    (workspace / ".conda" / "conda-meta").mkdir(parents=True)
    env = policy.execution_env(workspace)
    assert env["CONDA_PREFIX"] == "/workspace/.conda"
    assert env["PATH"] == "/workspace/.venv/bin:/workspace/.conda/bin:/usr/local/bin:/usr/bin:/bin"
    # The warm-session runner's interpreters (inside the container) activate it the same way.
    assert interpreters.CONDA_PREFIX == policy.CONDA_PREFIX
    real_isdir = os.path.isdir
    try:
        os.path.isdir = lambda path: path == "/workspace/.conda/conda-meta" or real_isdir(path)
        assert interpreters.conda_activated(dict(policy.BASE_ENV)) == env
    finally:
        os.path.isdir = real_isdir


# --- against the real engine --------------------------------------------------------------------------
def _watch_install_containers(box, monkeypatch):
    from workbench.sandbox.policy import LABEL_ROLE

    specs = []
    create = box.engine.create_container

    def recording(spec):
        if spec.labels.get(LABEL_ROLE) == "install":
            specs.append(spec)
        return create(spec)

    monkeypatch.setattr(box.engine, "create_container", recording)
    return specs


def _network(spec) -> str:
    return spec.network


def _installed(recorder):
    return {(e.payload["name"], e.payload["version"], e.payload.get("build"), e.payload.get("channel"))
            for e in recorder.of("package.installed") if e.payload["manager"] == "conda"}


@pytest.mark.engine
def test_install_from_a_folder_channel_and_use_it_later(rattler_ready, project, channel, monkeypatch,
                                                         workbench_cmd):
    from workbench.sandbox import Sandbox
    from workbench.sandbox.managers import conda

    _config(project, conda_channels=[f"file://{channel}"])
    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus) as box:
        specs = _watch_install_containers(box, monkeypatch)
        result = box.install("conda", ["hello-conda"])
        assert result.ok, result.output
        assert {(p.name, p.version, p.manager) for p in result.installed} == {("hello-conda", "1.0", "conda")}
        assert specs and all(_network(s) == "none" for s in specs) and result.reached == ()  # no way out
        assert specs[-1].mount_at(conda.RATTLER_MOUNT).read_only  # py-rattler, from the host's cache
        assert specs[-1].mount_at(str(channel)).read_only
        cache = specs[-1].mount_at(conda.CACHE_MOUNT)  # scratch on the host's disk, gone afterwards
        assert not cache.read_only and not os.path.exists(cache.source)
        assert not cache.source.startswith(str(project.root))
        check, _ = run(box, "shell", "hello-conda")
        assert check.stdout.kept == b"hello from conda in /workspace/.conda\n", check.stderr.text()
    where = f"file://{channel}/"
    assert _installed(recorder) == {("hello-conda", "1.0", "0", where)}
    # A second install, from the command line, adds to the prefix: greet-conda; hello-conda stays (unchanged,
    # so not reported again).
    root = str(project.root)
    done = _wb(workbench_cmd, "install", "-p", root, "--manager", "conda", "greet-conda>=2")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"installed greet-conda 2.1 (conda)\n"
    # A later one-off execution and a later warm session, each from a new `workbench` process.
    done = _wb(workbench_cmd, "exec", "-p", root, "--lang", "python", "-c",
               "import os, subprocess; print(os.environ['CONDA_PREFIX'], flush=True); subprocess.run(['greet-conda'])"
               "; print(open(os.environ['CONDA_PREFIX'] + '/share/greet-conda/message.txt').read(), end='')")
    assert done.returncode == 0 and done.stdout == (b"/workspace/.conda\nhello from conda in /workspace/.conda\n"
                                                    b"greet-conda 2.1\na message from a conda package\n"), \
        done.stderr.decode()
    for code in ("export MARK=kept; hello-conda", "echo $MARK $CONDA_PREFIX; command -v greet-conda"):
        done = _wb(workbench_cmd, "exec", "-p", root, "--session", "conda-s1", "--lang", "shell", "-c", code)
        assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"kept /workspace/.conda\n/workspace/.conda/bin/greet-conda\n", done.stderr.decode()
    export = _wb(workbench_cmd, "audit", "export", "-p", root)
    assert export.returncode == 0, export.stderr.decode()
    payloads = [json.loads(line)["payload"] for line in export.stdout.decode().split("\n")
                if '"package.installed"' in line]
    assert payloads == [{"name": "greet-conda", "version": "2.1", "build": "0", "channel": where,
                         "manager": "conda"}]
    assert _wb(workbench_cmd, "audit", "verify", "-p", root).returncode == 0


@pytest.mark.engine
def test_install_from_a_channel_on_the_host_loopback_goes_through_the_proxy(rattler_ready, project, channel,
                                                                            monkeypatch):
    """The channel listens on 127.0.0.1 only; the install container, with no network, reaches it (and only
    it) through the egress proxy, as pip, R and apt installs reach a URL source."""
    from workbench.sandbox import Sandbox
    from workbench.sandbox.egress import SOCKET_MOUNT

    served = repos.Served(channel)
    recorder = Recorder()
    try:
        _config(project, conda_channels=served.url)
        with Sandbox.open(project, bus=recorder.bus) as box:
            specs = _watch_install_containers(box, monkeypatch)
            result = box.install("conda", ["greet-conda"])
            assert result.ok, result.output
            assert specs and all(_network(s) == "none" for s in specs)
            assert specs[-1].mount_at(SOCKET_MOUNT) is not None  # the proxy's socket: its one way out
            assert result.reached == (f"127.0.0.1:{served.port}",) and result.refused == ()
            check, _ = run(box, "shell", "greet-conda")
            assert check.stdout.kept.endswith(b"greet-conda 2.1\n"), check.stderr.text()
    finally:
        served.close()
    assert "/noarch/hello-conda-1.0-0.tar.bz2" in served.paths and "/noarch/greet-conda-2.1-0.tar.bz2" in served.paths
    where = f"{served.url}/"
    assert _installed(recorder) == {("hello-conda", "1.0", "0", where), ("greet-conda", "2.1", "0", where)}
    egress = recorder.of("install.egress")
    assert egress and egress[-1].payload["manager"] == "conda"


@pytest.mark.engine
def test_bad_input_is_one_line_and_leaves_the_workspace_and_log_intact(rattler_ready, project, channel, tmp_path,
                                                                       workbench_cmd):
    root = str(project.root)
    (project.workspace / "notes.txt").write_text("mine\n")
    _config(project, conda_channels=[str(channel)])
    assert _wb(workbench_cmd, "install", "-p", root, "--manager", "conda", "hello-conda").returncode == 0
    before = sorted(p.name for p in (project.workspace / ".conda" / "conda-meta").iterdir())

    (tmp_path / "not-a-channel" / "stuff").mkdir(parents=True)
    _config(project, conda_channels=[str(tmp_path / "not-a-channel")])
    done = _wb(workbench_cmd, "install", "-p", root, "--manager", "conda", "greet-conda")
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr.decode()
    assert "[install] conda_channels" in lines[0] and "not a conda channel" in lines[0]

    _config(project, conda_channels=[str(channel)])
    done = _wb(workbench_cmd, "install", "-p", root, "--manager", "conda", "no-such-package")
    last = done.stderr.decode().strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("workbench: error: conda install failed"), done.stderr.decode()
    assert "no-such-package" in last

    assert (project.workspace / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in (project.workspace / ".conda" / "conda-meta").iterdir()) == before
    assert _wb(workbench_cmd, "audit", "verify", "-p", root).returncode == 0
    done = _wb(workbench_cmd, "exec", "-p", root, "--lang", "shell", "-c", "hello-conda")
    assert done.returncode == 0 and done.stdout == b"hello from conda in /workspace/.conda\n", done.stderr.decode()


@pytest.mark.engine
def test_a_channel_made_to_carry_offline_installs_from_its_folder(rattler_ready, project, channel, tmp_path,
                                                                  workbench_cmd):
    """packaging/conda-channel.py (the air-gapped recipe): solve against a connected channel (here the test
    channel served on loopback), download the solution and index the folder with py-rattler's indexer."""
    served = repos.Served(channel)
    made = tmp_path / "carried"
    try:
        done = subprocess.run([sys.executable, str(ROOT / "packaging" / "conda-channel.py"), str(made),
                               "--channel", served.url, "greet-conda"], capture_output=True, timeout=300)
    finally:
        served.close()
    assert done.returncode == 0, done.stderr.decode()
    listed = json.loads((made / "noarch" / "repodata.json").read_text())["packages"]
    assert set(listed) == {"hello-conda-1.0-0.tar.bz2", "greet-conda-2.1-0.tar.bz2"}
    assert (made / "linux-64" / "repodata.json").is_file()
    _config(project, conda_channels=[f"file://{made}"])
    root = str(project.root)
    done = _wb(workbench_cmd, "install", "-p", root, "--manager", "conda", "greet-conda")
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(done.stdout.decode().splitlines()) == ["installed greet-conda 2.1 (conda)",
                                                          "installed hello-conda 1.0 (conda)"]
    done = _wb(workbench_cmd, "exec", "-p", root, "--lang", "shell", "-c", "greet-conda")
    assert done.returncode == 0 and done.stdout.endswith(b"greet-conda 2.1\n"), done.stderr.decode()


@pytest.mark.engine
def test_records_code_planted_before_an_install_are_not_reported_as_installed(rattler_ready, project, channel):
    """Code writes the workspace, conda-meta included; what an install reports is what changed across it,
    read by the host, so a record planted beforehand is never in the log. A record that is not one (a
    symlink out) stops the install in one line before anything changes."""
    from workbench.sandbox import Sandbox

    _config(project, conda_channels=[str(channel)])
    meta = project.workspace / ".conda" / "conda-meta"
    fake = _record("fake-pkg", "9.9", fn="fake-pkg-9.9-0.tar.bz2", subdir="noarch", build_number=0, depends=[],
                   url="file:///srv/channel/noarch/fake-pkg-9.9-0.tar.bz2",
                   paths_data={"paths": [], "paths_version": 1})
    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus) as box:
        planted, _ = run(box, "shell", "mkdir -p .conda/conda-meta && cd .conda/conda-meta && "
                         "ln -s /etc/passwd passwd-1.0-0.json")
        assert planted.ok, planted.stderr.text()
        refused = box.install("conda", ["hello-conda"])
        assert refused.exit_code != 0 and refused.installed == ()
        said = [line for line in refused.output.splitlines() if line.startswith("conda: the prefix")]
        assert len(said) == 1 and "passwd-1.0-0.json" in said[0] and "remove them" in said[0], refused.output
        assert sorted(p.name for p in meta.iterdir()) == ["passwd-1.0-0.json"]  # nothing changed
        (meta / "passwd-1.0-0.json").unlink()
        planted, _ = run(box, "python", f"open('.conda/conda-meta/fake-pkg-9.9-0.json', 'w').write({fake!r})")
        assert planted.ok, planted.stderr.text()
        result = box.install("conda", ["hello-conda"])
        assert result.ok, result.output
    assert [p.name for p in result.installed] == ["hello-conda"]
    assert {name for name, *_ in _installed(recorder)} == {"hello-conda"}
    notes = [e.payload["message"] for e in recorder.of("error")]
    assert any("passwd-1.0-0.json" in note and "not followed" in note for note in notes)
