"""The bare `workbench [DIR]`: open the workstation on a project (created on first use)."""

from __future__ import annotations

from pathlib import Path

from workbench.project import Project


def open_tui(project_dir: Path) -> None:
    project = Project.open(project_dir, create=True)
    from workbench.tui.app import make_app

    make_app(project).run()
