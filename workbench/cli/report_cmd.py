"""`workbench report`: write the PDF compliance report of a project's audit log.

Thin: parse the options, call `workbench.report.render_report`, print one line. A log that does not
verify still yields a report (with a red banner); the command then exits 1 so a script notices.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from workbench.cli.common import open_project, project_option, say
from workbench.errors import UsageError, WorkbenchError


class LogDidNotVerify(WorkbenchError):
    """The report was written, but the log it shows did not verify (exit 1)."""

    exit_code = 1


def parse_time(value: str | None, option: str, end_of_day: bool = False) -> datetime | None:
    """ISO 8601 date or date-time; no zone means UTC; a bare date for --until means the end of that day."""
    if value is None:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{option} {value!r} is not an ISO 8601 date or time", "e.g. 2025-01-31 or "
                         "2025-01-31T14:00:00Z") from exc
    if end_of_day and len(text) == 10:
        moment = moment + timedelta(days=1) - timedelta(microseconds=1)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@click.command()
@project_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The PDF file to write.")
@click.option("--since", help="Only entries at or after this time (ISO 8601; UTC when no zone).")
@click.option("--until", help="Only entries at or before this time (ISO 8601; a date means its whole day).")
@click.option("--session", help="Only this session.")
def report(project_dir: Path, out: Path, since: str | None, until: str | None, session: str | None) -> None:
    """Write a PDF compliance report of the project's audit log."""
    start = parse_time(since, "--since")
    end = parse_time(until, "--until", end_of_day=True)
    if start is not None and end is not None and start > end:
        raise UsageError("--since is after --until")
    if out.suffix.lower() != ".pdf":
        raise UsageError(f"--out {out} does not end in .pdf")
    project = open_project(project_dir)
    if not project.audit_db.exists():
        raise WorkbenchError(f"no audit log in {project.root}", "nothing has been recorded in this project yet")
    from workbench.report import render_report

    summary = render_report(project, out, since=start, until=end, session=session)
    state = "log verified" if summary.verified else "LOG DID NOT VERIFY"
    say(f"wrote {summary.path}: {summary.pages} pages, {summary.sessions} sessions, "
               f"{summary.executions} executions, {state}, root {summary.root or 'unknown'}")
    if not summary.verified:
        raise LogDidNotVerify(f"the audit log did not verify: {summary.verification_error}",
                              "the report shows this in red on its cover")
