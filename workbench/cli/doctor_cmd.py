"""`workbench doctor` and `workbench setup`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from workbench.cli.common import one_line, say
from workbench.config import load_settings
from workbench.doctor import run_doctor
from workbench.errors import EngineUnavailable
from workbench.project import STATE_DIR


def _settings_for(project_dir: Path):
    root = project_dir.absolute()
    return load_settings(root if (root / STATE_DIR).is_dir() else None), root


@click.command()
@click.option("-p", "--project", "project_dir", type=click.Path(path_type=Path), default=Path("."),
              help="Read this project's settings too (default: current folder, when it is a project).")
def doctor(project_dir: Path) -> None:
    """Check the engine, isolation, limits, base image, model, keyring and disk; say how to fix what fails.

    Exits 0 when nothing fails (warnings allowed), 1 otherwise.
    """
    settings, root = _settings_for(project_dir)
    report = run_doctor(settings, root)
    for finding in report.findings:
        say(finding.line())
    sys.exit(0 if report.ok else 1)


@click.command()
@click.option("-p", "--project", "project_dir", type=click.Path(path_type=Path), default=Path("."),
              help="Use this project's settings (engine, image).")
def setup(project_dir: Path) -> None:
    """Build the offline base image (cached, so a second run takes seconds) and check the model."""
    settings, root = _settings_for(project_dir)
    from workbench.sandbox import image

    started = time.monotonic()

    def progress(message: str) -> None:
        say(f"  [{time.monotonic() - started:5.1f}s] {one_line(message)}")

    say("base image:")
    try:
        image.ensure_base_image(settings, progress)
    except EngineUnavailable:
        raise
    report = run_doctor(settings, root)
    model = report.get("model")
    if model is not None:
        say(model.line())
    say(f"setup done in {time.monotonic() - started:.1f}s")
    if model is not None and model.status == "fail":
        sys.exit(1)
