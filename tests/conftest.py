"""Guards for the whole suite: the developer's own config and data never leak into tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Each test gets its own user config and data folders (keys, themes, settings).

    The cache folder stays shared: it holds the base image tarball and models, which are slow to make.
    """
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("WORKBENCH_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(home / "data"))
    for name in list(os.environ):
        # The runtime stays: `make test` runs the security tests a second time under gVisor with it.
        if name.startswith("WORKBENCH_") and name not in ("WORKBENCH_CONFIG_DIR", "WORKBENCH_DATA_DIR",
                                                          "WORKBENCH_CACHE_DIR", "WORKBENCH_SANDBOX__RUNTIME"):
            monkeypatch.delenv(name)
    # The event contract is strict for the whole run: a producer emitting a kind or a field that
    # workbench.events does not declare fails its test instead of writing a record no reader knows.
    monkeypatch.setenv("WORKBENCH_STRICT_EVENTS", "1")
    # `workbench exec` from a test runs in-process unless the test is about the sandbox service
    # (tests/service/ turn it on): a detached service per test project would outlive the test.
    monkeypatch.setenv("WORKBENCH_SERVICE", "0")
    # No test touches the user's keyring, and this process and the `workbench` processes a test starts
    # agree on where keys live (the per-test data folder's file): a key made in-process under one backend
    # and looked for by a subprocess under another reads as a second, untrusted key. Tests of the keyring
    # path set their own backend after this (tests/audit/conftest.py's memory_keyring).
    import keyring
    from keyring.backends import fail

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def need(condition: bool, missing: str) -> None:
    """A test that needs a real part: fail loudly in CI, skip locally with a reason naming the part."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{missing} is missing (required in CI)")
    pytest.skip(f"needs {missing}")


@pytest.fixture
def project(tmp_path):
    from workbench.project import Project

    return Project.init(tmp_path / "proj")


@pytest.fixture
def workbench_cmd() -> list[str]:
    """The installed `workbench` command (the one a user runs)."""
    exe = shutil.which("workbench", path=str(Path(os.sys.executable).parent)) or shutil.which("workbench")
    assert exe, "the workbench console script is not installed in this environment"
    return [exe]
