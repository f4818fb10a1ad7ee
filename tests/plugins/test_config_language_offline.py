"""A language from configuration whose interpreter comes from a local apt repository, with no network:
a .deb built here with dpkg-deb (an interpreter script), a flat repository folder named by
`[install] apt_mirror`, and `[languages.hello]` asking for it. `workbench exec --lang hello` installs it on
its first use (and says so), runs it, and a later exec finds it in the project image."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need
from workbench import trust

pytestmark = pytest.mark.engine

INTERPRETER = "#!/bin/sh\n# the whole language: each line of the program, greeted\nexec sed 's/^/hello, /' \"$1\"\n"
CONTROL = ("Package: wb-lang-hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Workbench tests "
           "<t@example.invalid>\nDescription: an interpreter for the hello language (tests)\n")


def _repository(folder: Path) -> Path:
    """A flat apt repository (a Packages index at its top) holding wb-lang-hello."""
    need(shutil.which("dpkg-deb") is not None, "dpkg-deb (Debian's dpkg)")
    root = folder / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(CONTROL)
    script = root / "usr" / "bin" / "wb-hello-lang"
    script.write_text(INTERPRETER)
    script.chmod(0o755)
    repo = folder / "repo"
    repo.mkdir()
    deb = repo / "wb-lang-hello_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    data = deb.read_bytes()
    (repo / "Packages").write_text(f"{CONTROL}Filename: ./{deb.name}\nSize: {len(data)}\n"
                                   f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n")
    return repo


def test_a_config_language_from_a_local_apt_repository(engine_ready, project, workbench_cmd, tmp_path):
    repo = _repository(tmp_path)
    (project.state_dir / "config.toml").write_text(
        f'[install]\napt_mirror = "file://{repo}"\n\n'
        '[languages.hello]\ncommand = ["wb-hello-lang", "{file}"]\nextension = ".hello"\napt = ["wb-lang-hello"]\n')
    trust.trust(project)

    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([*workbench_cmd, "exec", "-p", str(project.root), "--lang", "hello", "-c", code],
                              capture_output=True, timeout=600)

    first = run("world\nreviewer")
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().splitlines() == ["hello, world", "hello, reviewer"]
    assert b"workbench: installing wb-lang-hello (apt) for hello, on its first use" in first.stderr
    second = run("again")
    assert (second.returncode, second.stdout.strip()) == (0, b"hello, again"), second.stderr
    assert b"installing" not in second.stderr  # found in the project image
