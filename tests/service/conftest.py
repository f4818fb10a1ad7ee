"""Fixtures for the sandbox service's tests: the real engine and image, the service switched on, and a
project whose service is stopped at the end (a detached service would otherwise outlive the test)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from tests.conftest import need


@pytest.fixture(scope="session")
def engine_ready():
    from workbench.config import Settings
    from workbench.sandbox import BASE_IMAGE, image_present, probe

    found = probe(Settings())
    need(found.reachable, f"a container engine ({found.error}; run packaging/setup-engine.sh)")
    need(image_present(settings=Settings()), f"the base image {BASE_IMAGE} (run: workbench setup)")
    return found


class Workbench:
    """`workbench ...` as a user runs it, against one project, with the service on."""

    def __init__(self, exe: str, project):
        self.exe, self.project, self.root = exe, project, str(project.root)

    def run(self, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([self.exe, *args], capture_output=True, timeout=timeout, **kwargs)

    def exec(self, code: str, *extra: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("exec", "-p", self.root, "--lang", "python", *extra, "-c", code, **kwargs)

    def pid(self) -> int | None:
        status = self.run("service", "status", "-p", self.root).stdout.decode()
        found = re.search(r"pid (\d+)", status)
        return int(found.group(1)) if found else None


@pytest.fixture
def wb(project, engine_ready, workbench_cmd, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SERVICE", "1")
    monkeypatch.setenv("WORKBENCH_SERVICE_IDLE", "120")
    bench = Workbench(workbench_cmd[0], project)
    yield bench
    pid = bench.pid()
    bench.run("service", "stop", "-p", bench.root)
    if pid and not gone(pid, 20):
        os.kill(pid, 9)
    from workbench.service import wire

    shutil.rmtree(os.path.join(wire.runtime_base(), "svc-" + wire.digest(bench.root)[:16]), ignore_errors=True)


def gone(pid: int, within: float) -> bool:
    """The process ended within `within` seconds (it removes its container first)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
