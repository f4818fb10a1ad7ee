"""`workbench report`."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import not_available, project_option


@click.command(context_settings={"ignore_unknown_options": True})
@project_option
@click.option("--out", "out", type=click.Path(path_type=Path), help="The PDF file to write.")
@click.option("--since", help="Only entries at or after this time (ISO 8601).")
@click.option("--until", help="Only entries before this time (ISO 8601).")
@click.option("--session", help="Only this session.")
def report(project_dir: Path, out: Path | None, since: str | None, until: str | None, session: str | None) -> None:
    """Write a PDF compliance report of the project's audit log."""
    not_available("workbench report", "the compliance report lands with issue 8")
