"""Fixtures for the TUI tests: a project named `demo`, fake services, and the engine check."""

from __future__ import annotations

import asyncio
import functools

import pytest

from tests.conftest import need
from workbench.config import Settings
from workbench.project import Project

from .fakes import FakeServices

SIZE = (160, 48)


@pytest.fixture
def demo(tmp_path) -> Project:
    """A fresh project whose folder is always called `demo` (the header shows the name)."""
    return Project.init(tmp_path / "demo")


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def make(demo, services):
    """Build the app the way the CLI does, with fakes and default settings (nothing of the user's)."""
    from workbench.tui.app import make_app

    def build(**kwargs):
        kwargs.setdefault("services", services)
        kwargs.setdefault("settings", Settings())
        kwargs.setdefault("persist_theme", False)
        app = make_app(demo, **kwargs)
        return app

    return build


@functools.cache
def _engine_state() -> tuple[bool, str]:
    try:
        from workbench.sandbox import engine, image

        settings = Settings()
        probe = engine.probe(settings)
        if not probe.reachable:
            return False, "a container engine"
        if not image.image_present(settings=settings):
            return False, "the base image (workbench setup)"
        return True, ""
    except Exception as exc:  # the sandbox package missing or broken
        return False, f"the sandbox ({exc})"


@pytest.fixture
def engine_ready() -> None:
    ok, missing = _engine_state()
    need(ok, missing)


def aio(test):
    """Run an async test on a fresh event loop (the suite has no asyncio plugin; Textual needs none)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


async def settle(pilot, until, timeout: float = 30.0, step: float = 0.02) -> None:
    """Wait (with the app running) until `until()` is true; fail with a clear message otherwise. The deadline
    is generous because CI shares two cores among the engine, the app and its workers (a loaded full run
    missed the 10 s deadline in a wait that passes alone); a condition that never holds still fails."""
    import time

    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {getattr(until, '__doc__', until)}")
        await pilot.pause(step)
    await asyncio.sleep(0)
