"""The engine under test: each conformance test runs once against `FakeEngine` and once against the real engine
(`DockerEngine` on Podman or Docker; marked `engine`: it fails in CI when the engine or the base image is
missing, and is skipped locally naming the part)."""

from __future__ import annotations

import uuid

import pytest

LABEL = "io.workbench.conformance"  # not a Workbench label: Sandbox.remove_stale never touches these


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.engine)])
def engine(request):
    from workbench.sandbox import BASE_IMAGE

    if request.param == "fake":
        from workbench.sandbox.fake_engine import FakeEngine

        made = FakeEngine(images=[BASE_IMAGE])
        yield made
        made.shutdown()
        return
    request.getfixturevalue("engine_ready")
    from workbench.config import Settings
    from workbench.sandbox.engine import connect

    made = connect(Settings())
    try:
        yield made
    finally:
        for left in made.list_containers({LABEL: ""}):  # a failed test's containers; the tests check their own
            made.remove(left.id)
        made.close()


@pytest.fixture
def run_label() -> dict[str, str]:
    """A label only this test's containers carry."""
    return {LABEL: uuid.uuid4().hex[:12]}


@pytest.fixture
def spec(run_label):
    """A container that idles until stopped, with no network."""
    from workbench.sandbox import BASE_IMAGE
    from workbench.sandbox.spec import ContainerSpec

    return ContainerSpec(BASE_IMAGE, ("sleep", "infinity"), labels=run_label, network="none",
                         env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
