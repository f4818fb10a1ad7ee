"""`workbench export notebook`: one session of the audit log as a Jupyter notebook.

Thin: parse the options, call `workbench.report.notebook.export_notebook`, print one line. A log that does
not verify is refused (exit 1, the verifier's line); `--unverified` writes it anyway, opening with a warning
cell, and still exits 1 so a script notices.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import VerificationFailed, open_project, project_option, say
from workbench.errors import UsageError, WorkbenchError


@click.group()
def export() -> None:
    """Export a session of the audit log in another format."""


@export.command()
@project_option
@click.option("--session", "session_id", required=True, help="The session to export (its id in the audit log).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The notebook file to write (.ipynb).")
@click.option("--unverified", "allow_unverified", is_flag=True,
              help="Export even when the audit log does not verify (the notebook then opens with a warning).")
def notebook(project_dir: Path, session_id: str, out: Path, allow_unverified: bool) -> None:
    """Write one session as a Jupyter notebook: task and steps as Markdown, executions as code cells."""
    if out.suffix.lower() != ".ipynb":
        raise UsageError(f"--out {out} does not end in .ipynb")
    project = open_project(project_dir)
    if not project.audit_db.exists():
        raise WorkbenchError(f"no audit log in {project.root}", "nothing has been recorded in this project yet")
    from workbench.report.notebook import export_notebook

    summary = export_notebook(project, out, session_id, allow_unverified=allow_unverified)
    state = "log verified" if summary.verified else "LOG DID NOT VERIFY"
    say(f"wrote {summary.path}: session {summary.session}, {summary.cells} cells, {summary.executions} executions, "
        f"{summary.images} images, {state}, root {summary.root or 'unknown'}")
    if not summary.verified:
        raise VerificationFailed(f"the audit log did not verify: {summary.verification_error}",
                                 "the notebook opens with this warning")
