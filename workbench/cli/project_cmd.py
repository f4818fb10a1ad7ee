"""`workbench init`."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import say
from workbench.project import Project


@click.command()
@click.argument("directory", type=click.Path(path_type=Path), default=Path("."))
def init(directory: Path) -> None:
    """Create a project in DIRECTORY (default: this folder); an existing project is left as it is."""
    project = Project.init(directory)
    say(f"project ready at {project.root} (workspace: {project.workspace})")
