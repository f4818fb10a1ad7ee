"""Installs never execute workspace-writable files with network (issue 15, item 5).

Code in the sandbox writes the whole workspace, the venv and the R library included, and the next install
container can reach the egress proxy. Each test plants a trap from inside a real sandbox execution, then runs
a real install from a source on the host's loopback (so the install container has its way out): a replaced
bin/python, a .pth file, a sitecustomize.py, the venv's own pip edited, a pip.conf in the venv pointing at a
planted sdist, and for R a poisoned dependency in /workspace/.R with an .Rprofile and an .Renviron. Every trap
leaves a marker file when it runs and tries to fetch /trap/NAME from the index through the proxy, and prints
a fake version listing. None may run: no marker, no /trap request, the install succeeds, the recorded
versions are the real ones (read back by the host), and the next execution works.

The last tests need no engine: what the host reads back, and where a source may not live.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.sandbox import repos
from tests.sandbox.conftest import Recorder, run, still_works

# Run where it is planted: leave a marker (with the proxy it saw), try the index through the proxy, and print
# a version listing in the shape the install used to parse.
TRAP = """
import os, urllib.request
with open("/workspace/trap-ran-{name}", "a") as marker:
    marker.write("proxy=%s\\n" % os.environ.get("http_proxy", ""))
try:
    urllib.request.urlopen("{url}/trap/{name}", timeout=3).close()
except Exception:
    pass
print("@@workbench-versions@@\\nwbdemo-a 6.6.6\\nwbdemo-b 6.6.6\\n@@workbench-versions@@\\nwbdemo-a 6.6.6", flush=True)
"""

SITE = "import glob; site = glob.glob('/workspace/.venv/lib/python3.*/site-packages')[0]\n"


def _config(project, **install):
    """The user's own settings for the test's project (so it stays trusted)."""
    from workbench.trust import own_change

    lines = ["[install]"] + [f"{key} = {json.dumps(value)}" for key, value in install.items()]
    with own_change(project):
        (project.root / ".workbench" / "config.toml").write_text("\n".join(lines) + "\n")


def _plant(box, language: str, code: str) -> None:
    result, _ = run(box, language, code, timeout=120)
    assert result.ok, (result.stdout.text(), result.stderr.text())


def _installed(result) -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in result.installed}


def _recorded(recorder) -> set[tuple[str, str]]:
    return {(e.payload["name"], e.payload["version"]) for e in recorder.of("package.installed")}


def _nothing_ran(project, served) -> None:
    markers = sorted(p.name for p in project.workspace.iterdir() if p.name.startswith("trap-ran"))
    assert markers == [], [(m, (project.workspace / m).read_text()) for m in markers]
    assert not [p for p in served.paths if p.startswith("/trap")], served.paths


@pytest.fixture
def index(tmp_path):
    served = repos.Served(repos.simple_index(tmp_path / "index"))
    yield served
    served.close()


@pytest.fixture
def venv_box(engine_ready, project, index):
    """A sandbox whose venv exists (wbdemo-b 0.5 installed by Workbench), the loopback index configured."""
    from workbench.sandbox import Sandbox

    _config(project, pip_index_url=f"{index.url}/simple")
    recorder = Recorder()
    with Sandbox.open(project, bus=recorder.bus) as box:
        first = box.install("pip", ["wbdemo-b"])
        assert first.ok and _installed(first) == {("wbdemo-b", "0.5")}, first.output
        recorder.events.clear()
        yield box, recorder


def _install_and_check(box, recorder, project, index) -> None:
    """Install wbdemo-a: it must succeed with its real version recorded, no trap having run; then it works."""
    result = box.install("pip", ["wbdemo-a"])
    _nothing_ran(project, index)
    assert result.ok, result.output
    assert result.reached == (f"127.0.0.1:{index.port}",)  # the install did have its way out
    assert _installed(result) == {("wbdemo-a", "1.0")}  # wbdemo-b 0.5 was there already; no 6.6.6
    assert _recorded(recorder) == {("wbdemo-a", "1.0")}
    # The next execution is code's own: a trap it planted in its venv may print there (with no network), and
    # the package just installed works.
    check, _ = run(box, "python", "import sys, wbdemo_a; print(wbdemo_a.VALUE, sys.executable)")
    assert check.ok and check.stdout.kept.endswith(b"a+b /workspace/.venv/bin/python\n"), check.stderr.text()



@pytest.mark.engine
@pytest.mark.timeout(300)
def test_a_replaced_venv_interpreter_is_never_run(venv_box, project, index):
    box, recorder = venv_box
    trap = TRAP.format(name="python", url=index.url)
    _plant(box, "python", f"""
import os
trap = '''#!/bin/sh
/usr/bin/python3 -c {trap!r}
exec /usr/bin/python3 "$@"
'''
for name in ("python", "python3", "python3.11"):
    path = "/workspace/.venv/bin/" + name
    os.unlink(path)
    with open(path, "w") as out:
        out.write(trap)
    os.chmod(path, 0o755)
with open("/workspace/.venv/pyvenv.cfg", "w") as out:
    out.write("home = /workspace/evil\\ninclude-system-site-packages = true\\nversion = 3.11.2\\n")
""")
    result = box.install("pip", ["wbdemo-a"])
    _nothing_ran(project, index)
    assert result.ok, result.output
    assert _installed(result) == {("wbdemo-a", "1.0")} and _recorded(recorder) == {("wbdemo-a", "1.0")}
    # The links are put back as `python3 -m venv` makes them, and pyvenv.cfg with them.
    bin_dir = project.workspace / ".venv" / "bin"
    assert {n: os.readlink(bin_dir / n) for n in ("python", "python3", "python3.11")} == {
        "python": "python3", "python3": "/usr/bin/python3", "python3.11": "python3"}
    config = (project.workspace / ".venv" / "pyvenv.cfg").read_text()
    assert "home = /usr/bin\n" in config and "include-system-site-packages = false\n" in config
    check, _ = run(box, "python", "import sys, wbdemo_a; print(wbdemo_a.VALUE, sys.executable)")
    assert check.stdout.kept == b"a+b /workspace/.venv/bin/python\n", check.stderr.text()
    assert not list(project.workspace.glob("trap-ran*"))  # the next execution ran the real interpreter
    still_works(box)


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_a_planted_pth_file_never_runs(venv_box, project, index):
    box, recorder = venv_box
    _plant(box, "python", SITE + f"""
open(site + "/wbtrap_hook.py", "w").write({TRAP.format(name="pth", url=index.url)!r})
open(site + "/000-wbtrap.pth", "w").write("import wbtrap_hook\\n")
""")
    _install_and_check(box, recorder, project, index)


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_a_planted_sitecustomize_never_runs(venv_box, project, index):
    # (The venv's python finds Debian's own sitecustomize first today; the install must not depend on that.)
    box, recorder = venv_box
    _plant(box, "python", SITE + f"""
for name in ("sitecustomize", "usercustomize"):
    open(site + "/" + name + ".py", "w").write({TRAP.format(name="sitecustomize", url=index.url)!r})
""")
    _install_and_check(box, recorder, project, index)


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_an_edited_venv_pip_never_runs(venv_box, project, index):
    box, recorder = venv_box
    _plant(box, "python", SITE + f"""
for name in ("pip/__init__.py", "pip/__main__.py", "pip/_internal/__init__.py", "pip/_internal/cli/main.py"):
    with open(site + "/" + name, "a") as out:
        out.write("\\n" + {TRAP.format(name="pip", url=index.url)!r})
""")
    _install_and_check(box, recorder, project, index)


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_a_pip_conf_in_the_venv_is_not_read(venv_box, project, index, tmp_path):
    """A pip.conf in the venv (pip reads `sys.prefix/pip.conf`) adding a find-links folder in the workspace,
    which holds a newer wbdemo-a as an sdist whose build is the trap, and an extra index elsewhere."""
    box, recorder = venv_box
    elsewhere = repos.free_port()
    _plant(box, "python", f"""
import io, os, tarfile
os.makedirs("/workspace/evil-wheels", exist_ok=True)
backend = {TRAP.format(name="sdist", url=index.url)!r} + '''
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("trap")
'''
members = {{"wbdemo-a-9.0/PKG-INFO": "Metadata-Version: 2.1\\nName: wbdemo-a\\nVersion: 9.0\\n",
           "wbdemo-a-9.0/pyproject.toml": '[build-system]\\nrequires = []\\nbuild-backend = "backend"\\n'
                                          'backend-path = ["."]\\n',
           "wbdemo-a-9.0/backend.py": backend}}
with tarfile.open("/workspace/evil-wheels/wbdemo-a-9.0.tar.gz", "w:gz") as tar:
    for name, text in members.items():
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
with open("/workspace/.venv/pip.conf", "w") as out:
    out.write("[global]\\nextra-index-url = http://127.0.0.1:{elsewhere}/simple\\n"
              "find-links = /workspace/evil-wheels\\n")
""")
    result = box.install("pip", ["wbdemo-a"])
    assert f"127.0.0.1:{elsewhere}" not in result.refused  # the extra index was never even tried
    _install_and_check_result(result, recorder, project, index)
    still_works(box)


def _install_and_check_result(result, recorder, project, index) -> None:
    _nothing_ran(project, index)
    assert result.ok, result.output
    assert _installed(result) == {("wbdemo-a", "1.0")} and _recorded(recorder) == {("wbdemo-a", "1.0")}


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_a_fresh_venv_is_made_without_network_and_console_scripts_work(engine_ready, project, tmp_path,
                                                                        monkeypatch):
    """No venv yet: it is made (pip in it, as `python3 -m venv` makes it) in a container with no way out; a
    package's console script then starts with the venv's interpreter in a later execution."""
    from workbench.sandbox import Sandbox
    from workbench.sandbox.egress import SOCKET_MOUNT

    root = tmp_path / "index"
    tool = _tool_wheel(root / "files")
    served = repos.Served(repos.simple_index(root, {"wbtool": tool}))
    _config(project, pip_index_url=f"{served.url}/simple")
    specs = []
    try:
        with Sandbox.open(project) as box:
            create = box.engine.create_container
            monkeypatch.setattr(box.engine, "create_container", lambda spec: (specs.append(spec), create(spec))[1])
            result = box.install("pip", ["wbtool"])
            assert result.ok, result.output
            assert _installed(result) == {("wbtool", "2.0")}  # pip and setuptools came with the venv
            made, pip = specs
            assert not any(m.target == SOCKET_MOUNT for m in made.mounts)
            assert any(m.target == SOCKET_MOUNT for m in pip.mounts)
            assert not [a for a in made.command if "/workspace/.venv/bin" in a]
            check, _ = run(box, "shell", "head -1 /workspace/.venv/bin/wbtool; wbtool; python -m pip --version")
    finally:
        served.close()
    out = check.stdout.text().splitlines()
    assert out[:2] == ["#!/workspace/.venv/bin/python", "wbtool ran"], (out, check.stderr.text())
    assert out[2].startswith("pip ") and "/workspace/.venv/lib/python3" in out[2]


@pytest.mark.engine
@pytest.mark.timeout(240)
def test_a_venv_made_over_planted_files_runs_none_of_them(engine_ready, project, index):
    """No venv yet, but code left a site-packages with a .pth that would hang forever and one that is the trap,
    and FIFOs where the venv's pyvenv.cfg and activate script go: making the venv runs no interpreter of the
    venv (ensurepip would) and writes through no FIFO, so nothing runs and nothing hangs."""
    from workbench.sandbox import Sandbox

    _config(project, pip_index_url=f"{index.url}/simple")
    with Sandbox.open(project) as box:
        _plant(box, "python", f"""
import os
site = "/workspace/.venv/lib/python3.11/site-packages"
os.makedirs(site)
open(site + "/000-hang.pth", "w").write("import time; time.sleep(100000)\\n")
open(site + "/wbtrap_hook.py", "w").write({TRAP.format(name="new-venv", url=index.url)!r})
open(site + "/001-wbtrap.pth", "w").write("import wbtrap_hook\\n")
os.makedirs("/workspace/.venv/bin")
os.mkfifo("/workspace/.venv/pyvenv.cfg")
os.mkfifo("/workspace/.venv/bin/activate")
""")
        for name in ("000-hang.pth", "001-wbtrap.pth"):  # later executions are code's own: not in the way
            assert (project.workspace / ".venv/lib/python3.11/site-packages" / name).exists()
        result = box.install("pip", ["wbdemo-a"])
        _nothing_ran(project, index)
        assert result.ok, result.output
        assert _installed(result) == {("wbdemo-a", "1.0"), ("wbdemo-b", "0.5")}
        for name in ("000-hang.pth", "001-wbtrap.pth"):
            (project.workspace / ".venv/lib/python3.11/site-packages" / name).unlink()
        check, _ = run(box, "python", "import wbdemo_a, pip; print(wbdemo_a.VALUE)")
        assert check.stdout.kept == b"a+b\n", check.stderr.text()


@pytest.mark.engine
@pytest.mark.timeout(240)
def test_metadata_that_is_not_a_file_neither_hangs_nor_misleads_the_install(venv_box, project, index):
    """A FIFO as a distribution's METADATA (pip would block reading it) and a dist-info that is a symlink: the
    install removes what is not metadata, finishes, and records the truth."""
    box, recorder = venv_box
    _plant(box, "python", SITE + """
import os
os.makedirs(site + "/wbfifo-1.0.dist-info")
os.mkfifo(site + "/wbfifo-1.0.dist-info/METADATA")
os.symlink("/etc", site + "/wblink-1.0.dist-info")
""")
    _install_and_check(box, recorder, project, index)
    site = next((project.workspace / ".venv" / "lib").glob("python3.*/site-packages"))
    assert not (site / "wbfifo-1.0.dist-info" / "METADATA").exists() and not (site / "wblink-1.0.dist-info").exists()


def _tool_wheel(folder: Path) -> Path:
    """wbtool 2.0: a console script `wbtool`."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    info = "wbtool-2.0.dist-info"
    files = {"wbtool/__init__.py": b"def main():\n    print('wbtool ran')\n",
             f"{info}/METADATA": b"Metadata-Version: 2.1\nName: wbtool\nVersion: 2.0\n",
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             f"{info}/entry_points.txt": b"[console_scripts]\nwbtool = wbtool:main\n"}
    record = "".join(f"{p},{repos._record_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    target = folder / "wbtool-2.0-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
    target.chmod(0o644)
    return target


# --- R ---------------------------------------------------------------------------------------------
R_REPO = r"""set -e
rm -rf /tmp/src /workspace/cran; mkdir -p /tmp/src/wbdep/R /tmp/src/wbuser/R /workspace/cran/src/contrib
cd /tmp/src
printf 'Package: wbdep\nVersion: 1.0.0\nTitle: Dep\nDescription: A dependency.\nAuthors@R: person("W", "T", email = "t@example.invalid", role = c("aut", "cre"))\nLicense: MIT\n' > wbdep/DESCRIPTION
echo 'export(word)' > wbdep/NAMESPACE
echo 'word <- function() "real wbdep"' > wbdep/R/word.R
printf 'Package: wbuser\nVersion: 0.1.0\nTitle: User\nDescription: Uses wbdep.\nAuthors@R: person("W", "T", email = "t@example.invalid", role = c("aut", "cre"))\nLicense: MIT\nImports: wbdep\n' > wbuser/DESCRIPTION
printf 'export(hello)\nimportFrom(wbdep, word)\n' > wbuser/NAMESPACE
echo 'hello <- function() paste("wbuser with", word())' > wbuser/R/hello.R
R CMD build --no-build-vignettes --no-manual wbdep >/dev/null
R CMD build --no-build-vignettes --no-manual wbuser >/dev/null
cp wbdep_1.0.0.tar.gz wbuser_0.1.0.tar.gz /workspace/cran/src/contrib/
Rscript -e 'tools::write_PACKAGES("/workspace/cran/src/contrib", type = "source")'
"""

R_TRAP = """
marker <- function(name) {
  cat("proxy=", Sys.getenv("http_proxy"), "\\n", file = paste0("/workspace/trap-ran-", name), append = TRUE)
  try(readLines(url(paste0("@URL@/trap/", name))), silent = TRUE)
  cat("@@workbench-versions@@\\nwbuser 6.6.6\\nwbdep 6.6.6\\n")
}
"""


@pytest.mark.engine
@pytest.mark.timeout(420)
def test_r_never_loads_what_the_workspace_holds(engine_ready, project, tmp_path_factory):
    """A poisoned wbdep 9.9.9 in /workspace/.R (its .onLoad is the trap) would satisfy wbuser's Imports and be
    loaded while wbuser is built, with the proxy in reach; an .Rprofile and an .Renviron in the workspace
    ask R to run and load it at start-up. None of it runs: wbdep comes from the repository again."""
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    builder = Project.init(tmp_path_factory.mktemp("rbuilder") / "proj")
    with Sandbox.open(builder) as box:
        _plant(box, "shell", R_REPO)
    served = repos.Served(builder.workspace / "cran")
    trap = R_TRAP.replace("@URL@", served.url)
    _config(project, cran_repo=served.url)
    recorder = Recorder()
    try:
        with Sandbox.open(project, bus=recorder.bus) as box:
            _plant(box, "shell", f"""set -e
rm -rf /tmp/src; mkdir -p /tmp/src/wbdep/R /workspace/.R
printf 'Package: wbdep\\nVersion: 9.9.9\\nTitle: Trap\\nDescription: Trap.\\nLicense: MIT\\n' > /tmp/src/wbdep/DESCRIPTION
printf 'export(word)\\n' > /tmp/src/wbdep/NAMESPACE
cat > /tmp/src/wbdep/R/zzz.R <<'EOF'
{trap}
word <- function() "poisoned wbdep"
.onLoad <- function(lib, pkg) marker("onload")
EOF
R CMD INSTALL --no-test-load -l /workspace/.R /tmp/src/wbdep >/dev/null 2>&1
cat > /workspace/.Rprofile <<'EOF'
{trap}
marker("rprofile")
EOF
printf 'R_DEFAULT_PACKAGES=wbdep\\nR_LIBS=/workspace/.R\\n' > /workspace/.Renviron
""")
            result = box.install("r", ["wbuser"])
            _nothing_ran(project, served)
            assert result.ok, result.output
            assert result.reached == (f"127.0.0.1:{served.port}",)
            assert _installed(result) == {("wbuser", "0.1.0"), ("wbdep", "1.0.0")}  # wbdep replaced, 9.9.9 gone
            assert _recorded(recorder) == {("wbuser", "0.1.0"), ("wbdep", "1.0.0")}
            for name in (".Rprofile", ".Renviron"):  # later executions are the user's own: not in the way
                (project.workspace / name).unlink()
            check, _ = run(box, "r", "library(wbuser); cat(hello(), '\\n')")
            assert check.stdout.kept == b"wbuser with real wbdep \n", check.stderr.text()
            still_works(box)
    finally:
        served.close()


# --- no engine: what the host reads back, where a source may live -----------------------------------
def _dist(site: Path, name: str, metadata: str) -> None:
    (site / f"{name}.dist-info").mkdir(parents=True)
    (site / f"{name}.dist-info" / "METADATA").write_text(metadata)


def test_the_record_is_read_from_the_venv_metadata_and_hostile_entries_are_notes(tmp_path):
    from workbench.sandbox.readback import venv_distributions

    site = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    _dist(site, "good-1.0", "Metadata-Version: 2.1\nName: good\nVersion: 1.0\n\nVersion: 6.6.6\n")
    _dist(site, "markup-1.0", "Name: [@click=app.quit]x\nVersion: 1.0\n")
    _dist(site, "escape-1.0", "Name: evil\nVersion: 1.0\x1b]0;title\x07\n")
    (site / "linked-1.0.dist-info").symlink_to("/etc")
    (site / "fifo-1.0.dist-info").mkdir()
    os.mkfifo(site / "fifo-1.0.dist-info" / "METADATA")
    (site / "huge-1.0.dist-info").mkdir()
    (site / "huge-1.0.dist-info" / "METADATA").write_bytes(b"Name: huge\nVersion: 2.0\n" + b"x" * 10_000_000)
    listing = venv_distributions(tmp_path)
    assert listing.versions == {"good": "1.0", "huge": "2.0"}
    notes = "\n".join(listing.notes)
    assert "linked-1.0.dist-info is a symlink to /etc: not followed" in notes
    assert "METADATA is a FIFO: not opened" in notes
    assert "not a package name and version" in notes and "\x1b" not in notes  # shown, never interpreted
    assert all("\n" not in note for note in listing.notes)


def test_a_symlinked_site_packages_is_a_note_not_followed(tmp_path):
    from workbench.sandbox.readback import r_library, venv_distributions

    (tmp_path / ".venv" / "lib" / "python3.11").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    _dist(elsewhere, "x-1.0", "Name: x\nVersion: 1.0\n")
    (tmp_path / ".venv" / "lib" / "python3.11" / "site-packages").symlink_to(elsewhere)
    listing = venv_distributions(tmp_path)
    assert listing.versions == {} and "site-packages is a symlink to" in listing.notes[0]
    (tmp_path / ".R").symlink_to(elsewhere)
    listing = r_library(tmp_path)
    assert listing.versions == {} and ".R is a symlink to" in listing.notes[0]


def test_dpkg_status_gives_the_installed_version_of_the_packages_asked_for(tmp_path):
    from workbench.sandbox.readback import dpkg_status

    (tmp_path / "status").write_text(
        "Package: jq\nStatus: install ok installed\nVersion: 1.6-2.1\nDescription: x\n continued\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: other\nStatus: install ok installed\nVersion: 2.0\n")
    assert dpkg_status(tmp_path, ["jq", "gone"]).versions == {"jq": "1.6-2.1"}
    assert dpkg_status(tmp_path / "missing", ["jq"]).notes


def test_a_source_inside_the_workspace_is_refused_when_the_install_has_a_way_out(tmp_path):
    from workbench.errors import ConfigError
    from workbench.sandbox.egress import Destination
    from workbench.sandbox.managers import MANAGERS

    workspace = tmp_path / "workspace"
    (workspace / "wheels").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "link").symlink_to(workspace / "wheels")
    box = SimpleNamespace(project=SimpleNamespace(workspace=workspace))
    way_out = frozenset({Destination("127.0.0.1", 8000)})
    pip, apt = MANAGERS.get("pip"), MANAGERS.get("apt")
    for inside in (workspace / "wheels", tmp_path / "link"):
        with pytest.raises(ConfigError, match="inside this project's workspace"):
            pip.refuse_workspace_sources(box, {str(inside): {}}, way_out)
    pip.refuse_workspace_sources(box, {str(workspace / "wheels"): {}}, frozenset())  # no way out: harmless
    pip.refuse_workspace_sources(box, {str(tmp_path / "outside"): {}}, way_out)
    with pytest.raises(ConfigError, match="apt_mirror"):  # apt runs as root: never from the workspace
        apt.refuse_workspace_sources(box, {str(workspace / "wheels"): {}}, frozenset())
