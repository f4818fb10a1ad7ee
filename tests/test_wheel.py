"""The wheel a user installs (`pipx install`, `uv tool install`) carries what the package needs at run time:
the built-in themes, the in-container code (runner, kernels, relay), and a working `workbench` command in a
clean virtualenv."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (found,) = out.glob("workbench-*.whl")
    return found


def test_wheel_carries_themes_and_runner(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    themes = [n for n in names if n.startswith("workbench/_themes/") and n.endswith(".toml")]
    assert {Path(t).stem for t in themes} >= {"workbench-dark", "workbench-light", "workbench-high-contrast"}
    container = {"runner.py", "protocol.py", "interpreters.py", "relay.py", "kernels/python.py", "kernels/shell.sh",
                 "kernels/r.R"}  # the code that runs inside the containers (workbench/sandbox/container/)
    assert {f"workbench/sandbox/container/{name}" for name in container} <= set(names)
    assert not any(n.startswith(("tests/", "bench/", "packaging/")) for n in names)


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # llama-cpp-python comes from the locally built wheel (PyPI has only an sdist for this Python).
    llama = subprocess.run(["bash", str(ROOT / "packaging" / "llama-wheel.sh")], capture_output=True, text=True,
                           env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin",
                                "HOME": str(Path.home())}, timeout=900).stdout.strip()
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", llama, str(wheel)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    help_text = subprocess.run([str(venv / "bin" / "workbench"), "--help"], capture_output=True, text=True,
                               timeout=60, cwd=tmp_path)
    assert help_text.returncode == 0 and "doctor" in help_text.stdout
    themes = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "from importlib.resources import files; "
                             "print(sorted(p.name for p in files('workbench').joinpath('_themes').iterdir()))"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)  # not this checkout
    assert "workbench-dark.toml" in themes.stdout, themes.stderr
