"""Pieces shared by the command modules: the `-p DIR` option and opening a project from it."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.errors import NotAvailableYet
from workbench.project import Project

project_option = click.option(
    "-p", "--project", "project_dir", type=click.Path(file_okay=True, dir_okay=True, path_type=Path),
    default=Path("."), show_default="current folder", help="The project folder.")


def open_project(project_dir: Path, create: bool = False) -> Project:
    return Project.open(project_dir, create=create)


def not_available(feature: str, issue: str) -> None:
    """Say that a command of the contract has not landed yet (exit 2)."""
    raise NotAvailableYet(f"'{feature}' is not available yet in this version of Workbench ({issue})")
