"""The offline bundle: built on this (connected) machine, installed with no network at all.

The install runs inside a network namespace whose only interface is loopback (`ip netns`), then
`workbench doctor` and a `workbench exec` run there too. A corrupt or incomplete bundle is refused
before anything is installed, naming the file that failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "packaging" / "install-bundle.sh"


def sh(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


# --- the manifest check, on a tiny synthetic bundle (fast, no engine) ------------------------------------

def tiny_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    (bundle / "VERSION").write_text("0.0.0\n")
    shutil.copy(INSTALLER, bundle / "install.sh")
    lines = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "install.sh"):
        rel = path.relative_to(bundle)
        digest = sh("sha256sum", str(path)).stdout.split()[0]
        lines.append(f"{digest}  {path.stat().st_size}  {rel}  ")
    (bundle / "MANIFEST").write_text("\n".join(lines) + "\n")
    return bundle


def run_installer(bundle: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFIX": str(tmp_path / "prefix"), "BIN_DIR": str(tmp_path / "bin")}
    return sh("bash", str(bundle / "install.sh"), env=env, timeout=120)


def test_corrupt_file_is_refused_and_named(tmp_path):
    bundle = tiny_bundle(tmp_path)
    wheel = bundle / "wheels" / "a-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a whee!")  # same size, other bytes
    result = run_installer(bundle, tmp_path)
    assert result.returncode != 0
    assert "bundle corrupt: wheels/a-1.0-py3-none-any.whl does not match its SHA-256" in result.stderr
    assert not (tmp_path / "prefix").exists()  # nothing was installed


def test_missing_file_is_refused_and_named(tmp_path):
    bundle = tiny_bundle(tmp_path)
    (bundle / "VERSION").unlink()
    result = run_installer(bundle, tmp_path)
    assert result.returncode != 0 and "bundle incomplete: VERSION is missing" in result.stderr
    assert not (tmp_path / "prefix").exists()


def test_missing_manifest_is_refused(tmp_path):
    bundle = tiny_bundle(tmp_path)
    (bundle / "MANIFEST").unlink()
    result = run_installer(bundle, tmp_path)
    assert result.returncode != 0 and "MANIFEST is missing" in result.stderr


# --- the real bundle, installed offline ------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_bundle(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the offline install test needs root for a network namespace (CI runs as root)")
    need(shutil.which("ip") is not None and shutil.which("podman") is not None, "iproute2 (ip) and podman")
    out = tmp_path_factory.mktemp("dist")
    venv = Path(sys.executable).parent.parent
    result = sh("bash", str(ROOT / "packaging" / "build-bundle.sh"), str(out), cwd=ROOT,
                env={**os.environ, "VENV": str(venv)}, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    archives = list(out.glob("workbench-bundle-*.tar"))
    assert len(archives) == 1
    with tarfile.open(archives[0]) as tar:
        tar.extractall(out, filter="data")
    return next(p for p in out.iterdir() if p.is_dir())


@pytest.fixture
def netns():
    name = f"wbtest{uuid.uuid4().hex[:8]}"
    assert sh("ip", "netns", "add", name).returncode == 0
    sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    yield name
    sh("ip", "netns", "delete", name)


@pytest.mark.engine
@pytest.mark.slow
def test_bundle_installs_and_runs_with_no_network(built_bundle, netns, tmp_path):
    manifest = (built_bundle / "MANIFEST").read_text().splitlines()
    names = [line.split()[2] for line in manifest]
    assert any(n.startswith("wheels/llama_cpp_python-") for n in names)
    assert any(n.startswith("wheels/workbench-") for n in names)
    assert "image/workbench-base.tar" in names
    assert any(n.startswith("models/") and n.endswith(".gguf") for n in names)
    assert any(n.startswith("conda/py_rattler-") and n.endswith(".whl") for n in names)  # conda installs
    if shutil.which("apt-get"):  # the report's fonts travel too (CJK included)
        assert any(n.startswith("debs/fonts-droid-fallback_") for n in names)
        assert any(n.startswith("debs/fonts-dejavu-core_") for n in names)
        assert any(n.startswith("debs/runsc_") for n in names)  # gVisor, for setup-engine.sh --runsc offline

    links = sh("ip", "netns", "exec", netns, "ip", "-o", "link").stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]  # truly nothing but loopback

    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path),
           "PREFIX": str(tmp_path / "prefix"), "BIN_DIR": str(tmp_path / "bin"),
           "WORKBENCH_CACHE_DIR": str(tmp_path / "cache"), "WORKBENCH_CONFIG_DIR": str(tmp_path / "config"),
           "WORKBENCH_DATA_DIR": str(tmp_path / "data"), "PIP_CONFIG_FILE": "/dev/null"}
    install = sh("ip", "netns", "exec", netns, "bash", str(built_bundle / "install.sh"), env=env, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert "bundle of Workbench" in install.stdout and "is intact" in install.stdout
    assert "[ok  ] engine" in install.stdout and "[ok  ] base image" in install.stdout
    assert "[ok  ] embeddings" in install.stdout  # the converted model travelled and is found

    workbench = tmp_path / "bin" / "workbench"
    project = tmp_path / "project"
    assert sh("ip", "netns", "exec", netns, str(workbench), "init", str(project), env=env).returncode == 0
    result = sh("ip", "netns", "exec", netns, str(workbench), "exec", "-p", str(project), "--lang", "python",
                "-c", "print(6*7)", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "42"


@pytest.mark.engine
@pytest.mark.slow
def test_bundled_image_is_a_podman_load_archive(built_bundle, tmp_path):
    # Load into a separate, throwaway storage so the engine in use is left alone (podman wants a short
    # runroot path).
    runroot = Path(f"/tmp/wbl-{uuid.uuid4().hex[:8]}")
    storage = ["--root", str(tmp_path / "root"), "--runroot", str(runroot), "--storage-driver", "vfs"]
    loaded = sh("podman", *storage, "load", "-q", "-i", str(built_bundle / "image" / "workbench-base.tar"),
                timeout=600)
    assert loaded.returncode == 0, loaded.stderr
    expected = (built_bundle / "image" / "IMAGE").read_text().strip()
    images = sh("podman", *storage, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert expected in images
    sh("podman", *storage, "system", "reset", "-f", timeout=300)
    shutil.rmtree(runroot, ignore_errors=True)
