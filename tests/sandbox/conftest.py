"""Fixtures for tests that need the real engine and image.

`engine_ready` is the gate: when the engine or the base image is missing, engine tests FAIL in CI (the
env var CI is set) and are skipped locally with a reason naming the missing part (tests.conftest.need).
"""

from __future__ import annotations

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


class Recorder:
    """Collects the events a sandbox publishes."""

    def __init__(self):
        from workbench.events import EventBus

        self.bus = EventBus()
        self.events = []
        self.bus.subscribe(self.events.append)

    def kinds(self):
        return [e.kind for e in self.events]

    def of(self, kind, execution_id=None):
        return [e for e in self.events if e.kind == kind
                and (execution_id is None or e.payload.get("execution_id") == execution_id)]


def make_settings(**sandbox):
    """Settings with these sandbox values; the runtime the run was given (WORKBENCH_SANDBOX__RUNTIME) unless
    one is passed (an explicit SandboxSettings would otherwise hide the environment's)."""
    import os

    from workbench.config import SandboxSettings, Settings

    sandbox.setdefault("runtime", os.environ.get("WORKBENCH_SANDBOX__RUNTIME", ""))
    return Settings(sandbox=SandboxSettings(**sandbox))


@pytest.fixture(scope="module")
def module_project(tmp_path_factory):
    from workbench.project import Project

    return Project.init(tmp_path_factory.mktemp("sandbox") / "proj")


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


@pytest.fixture(scope="module")
def sandbox(engine_ready, module_project, recorder):
    """One sandbox for a whole test module (as in a real session), closed at the end."""
    from workbench.sandbox import Sandbox

    box = Sandbox.open(module_project, bus=recorder.bus, settings=make_settings(timeout=30),
                       session_id="test", actor="user:test")
    yield box
    box.close()


def run(box, language, code, **kwargs):
    """Execute and return (result, chunks)."""
    execution = box.execute(language, code, **kwargs)
    chunks = list(execution)
    return execution.result(), chunks


def still_works(box):
    """After an attack, the sandbox must still run code."""
    result, _ = run(box, "python", "print('still here')")
    assert result.ok, result
    assert result.stdout.kept == b"still here\n"
