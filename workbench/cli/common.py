"""Pieces shared by the command modules: the `-p DIR` option, opening a project from it, and `say`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from workbench.errors import NotAvailableYet, WorkbenchError
from workbench.inert import one_line, visible

if TYPE_CHECKING:  # the settings (pydantic-settings) load only when a command opens a project
    from workbench.project import Project

__all__ = ["VerificationFailed", "not_available", "one_line", "open_project", "project_option", "say"]

project_option = click.option(
    "-p", "--project", "project_dir", type=click.Path(file_okay=True, dir_okay=True, path_type=Path),
    default=Path("."), show_default="current folder", help="The project folder.")


class VerificationFailed(WorkbenchError):
    """The log (or export, or a witness's cosignature) does not verify: `audit verify` and the witness
    checks it runs both exit 1 with it."""

    exit_code = 1


def open_project(project_dir: Path, create: bool = False) -> Project:
    from workbench.project import Project

    project = Project.open(project_dir, create=create)
    warn_if_restricted(project)
    return project


def warn_if_restricted(project: Project) -> None:
    """One line on stderr when the project is not trusted: what is ignored, and the command that trusts it."""
    from workbench import trust

    state = trust.state(project)
    if state.problem:
        say(f"workbench: {state.problem}", err=True, fg="yellow")
    if state.trusted:
        return
    _settings, ignored = project.settings_and_ignored()
    parts = [f"restricted ({state.reason})"]
    if state.changes:
        parts.append("changed: " + ", ".join(state.changes))
    if ignored:
        parts.append("ignored: " + ", ".join(name.split(" ", 1)[0] for name in ignored))
    if state.schedules:
        parts.append(f"{len(state.schedules)} schedule(s) will not run")
    say(one_line(f"workbench: {project.root} is {'; '.join(parts)}; to trust it: workbench trust -p {project.root}"),
        err=True, fg="yellow")


def not_available(feature: str, issue: str) -> None:
    """Say that a command of the contract has not landed yet (exit 2)."""
    raise NotAvailableYet(f"'{feature}' is not available yet in this version of Workbench ({issue})")


def say(text: object = "", *, err: bool = False, nl: bool = True, **style: Any) -> None:
    """Print a line Workbench writes itself. Its text quotes file names, package names, output, errors
    and the model's words, so every control character is shown as a visible escape (`\\x1b]0;...`) and
    the terminal interprets none of it; newlines are kept (use `one_line` on a field that must stay on its
    line). Workbench's own styling (`fg=`, `bold=`) is added afterwards. Only `workbench exec` copies the
    code's own stdout and stderr raw, as `docker exec` does."""
    line = visible(text)
    click.echo(click.style(line, **style) if style else line, err=err, nl=nl)
