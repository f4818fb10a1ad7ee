"""Tests of the code that runs inside the containers (workbench/sandbox/container/), on the host's python3.

Nothing here starts the runner's server loop or a sweep: on the host, `Server.sweep` would kill every
process of the test's user it can see (inside a container it sees only the container's). The parts are
driven one by one instead: the frame protocol over socket pairs, a connection's handling, the interpreter
programs as subprocesses, the relay against a local socket."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench.sandbox.container as container

FOLDER = Path(container.__file__).parent


@pytest.fixture
def installed(tmp_path) -> Path:
    """The runner's files as the host installs them into a project's code folder (/opt/workbench)."""
    target = tmp_path / "opt-workbench"
    target.mkdir()
    container.install(target)
    return target
