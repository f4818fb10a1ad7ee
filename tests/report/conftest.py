"""Fixtures for the report tests: an isolated signing key, no engine probe, and small logs to report on."""

from __future__ import annotations

import io
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail


@pytest.fixture(autouse=True)
def isolated_keys(tmp_path, monkeypatch):
    """Each test has its own data folder and no real keyring: the key goes to the 0600 file fallback."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "user-data"))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def no_engine_probe(request, monkeypatch):
    """Cover facts without asking a container engine (tests marked `engine` ask the real one)."""
    if request.node.get_closest_marker("engine"):
        return
    from workbench.report import environment

    def fake(project):
        return environment.EngineFacts(True, "podman 9.9.9", "unix:///fake.sock", True, True,
                                       settings=environment.configured_limits(project.settings()))

    monkeypatch.setattr(environment, "probe_engine", fake)


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


def pdf_reader(path: Path):
    from pypdf import PdfReader

    return PdfReader(io.BytesIO(path.read_bytes()))


def append(project, events) -> None:
    """Append events through the real audit API, then sign a checkpoint."""
    from workbench.audit import AuditLog

    log = AuditLog.open(project)
    try:
        log.extend(events)
        log.checkpoint()
    finally:
        log.close()
