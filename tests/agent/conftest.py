"""Fixtures for the agent's tests.

`sandbox_env` runs each loop scenario twice: against `FakeSandbox`, and (marked `engine`) against the
real sandbox from `WorkSession.open(project).sandbox`. Without an engine or image the real one is
skipped locally with the reason, and fails when the environment variable CI is set, so CI cannot pass
by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from workbench.events import Event, EventBus

from .fakes import FakeSandbox


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads the developer's real model stores or config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKBENCH_CONFIG_DIR", str(home / ".config" / "workbench"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(home / ".local" / "share" / "workbench"))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(home / ".cache" / "workbench"))
    return home


@dataclass
class SandboxEnv:
    kind: str
    sandbox: Any
    workspace: Path
    bus: EventBus
    session_id: str = "test-session"
    events: list[Event] = field(default_factory=list)

    def emit(self, kind: str, payload: dict[str, Any]) -> Event:
        return self.bus.emit(kind, self.session_id, "agent:test/scripted", payload)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def executed(self) -> int:
        """How many executions the sandbox ran (from its events for the real one)."""
        if isinstance(self.sandbox, FakeSandbox):
            return len(self.sandbox.executions)
        return len([e for e in self.events if e.kind == "exec.finished"])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"real sandbox unavailable in CI: {reason}")
    pytest.skip(f"real sandbox unavailable: {reason}")


def _fake(tmp_path: Path) -> SandboxEnv:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    bus = EventBus()
    env = SandboxEnv("fake", FakeSandbox(workspace), workspace, bus)
    bus.subscribe(env.events.append)
    return env


@pytest.fixture
def fake_env(tmp_path) -> SandboxEnv:
    """The fake sandbox only: for the loop's finer rules, where the engine adds nothing but time."""
    return _fake(tmp_path)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.engine)])
def sandbox_env(request, tmp_path) -> Iterator[SandboxEnv]:
    if request.param == "fake":
        yield _fake(tmp_path)
        return
    from workbench.project import Project
    from workbench.session import WorkSession

    try:
        from workbench.sandbox import Sandbox  # noqa: F401
    except ImportError as exc:
        _unavailable(f"workbench.sandbox.Sandbox cannot be imported ({exc}): no container engine driver")
    project = Project.init(tmp_path / "project")
    try:
        session = WorkSession.open(project, actor="agent:test/scripted")
    except ImportError:
        session = WorkSession.open(project, actor="agent:test/scripted", record=False)
    env = SandboxEnv("real", None, project.workspace, session.bus, session.session_id)
    session.bus.subscribe(env.events.append)
    try:
        env.sandbox = session.sandbox
    except Exception as exc:  # EngineUnavailable and friends: name the missing engine or image
        session.close()
        message = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        _unavailable(f"no container engine or base image ({message})")
    try:
        yield env
    finally:
        session.close()
