"""`workbench audit replay`: run a session's recorded executions again and show, as a table, what reproduced.

Thin: parse, call `workbench.replay.replay`, print. Exit 0 only when every execution reproduced bit for bit;
1 when any differs or could not be replayed; 2 for bad input (no such session or execution).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import WorkbenchError


class NotReproduced(WorkbenchError):
    """Some execution differed from its record, or could not be replayed (exit 1)."""

    exit_code = 1


STATUS_STYLE = {"reproduced": "green", "differs": "red", "not_replayed": "yellow"}


@click.command("replay")
@project_option
@click.option("--session", "session_id", help="The session to replay (default: the newest one that ran code).")
@click.option("--execution", "execution_id", help="Only this execution (its id in the audit log).")
def replay(project_dir: Path, session_id: str | None, execution_id: str | None) -> None:
    """Re-run recorded executions in a throw-away copy of the workspace and say whether each reproduced.

    Each execution's inputs (the files it read, by hash) come from the replay's earlier executions or the
    workspace, never anything else; it runs on the recorded image (by digest). The replay is audited as a
    session of its own (trigger: replay); the real workspace is never touched.
    """
    from workbench.replay import replay as run_replay

    project = open_project(project_dir)
    report = run_replay(project, session_id=session_id, execution_id=execution_id)
    show(report)
    if not report.ok:
        bad = sum(1 for o in report.outcomes if o.status != "reproduced")
        raise NotReproduced(f"{bad} of {len(report.outcomes)} execution(s) did not reproduce "
                                 f"(replay session {report.replay_session_id})")


def show(report) -> None:  # noqa: ANN001 - a workbench.replay.Report
    """The verdicts as a table, then each difference with its diff. Text from the log or the sandbox is
    inert (`one_line`, no markup: rich's Text is never parsed for markup)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = 120  # a pipe or a log file: wide enough that ids and verdicts stay on one line
    table = Table(title=Text(f"replay of session {one_line(report.session_id)} as session "
                             f"{one_line(report.replay_session_id)}"), show_lines=False)
    for name in ("execution", "language", "result", "what differs", "environment", "inputs"):
        table.add_column(name, overflow="fold")
    for o in report.outcomes:
        what = "; ".join(sorted({d.what for d in o.differences})) or "-"
        env = ("-" if o.status == "not_replayed" else "same" if not o.environment_note
               else "differs" if "differs" in o.environment_note else "not compared")
        table.add_row(Text(one_line(o.recorded.execution_id)), Text(one_line(o.recorded.language)),
                      Text(o.status.replace("_", " "), style=STATUS_STYLE.get(o.status, "")), Text(one_line(what)),
                      Text(env), Text(one_line(o.inputs)))
    console.print(table)
    for o in report.outcomes:
        for d in o.differences:
            console.print(Text(f"{one_line(o.recorded.execution_id)}: {one_line(d.line)}"))
            if d.diff:
                console.print(Text("    " + d.diff.replace("\n", "\n    ")))
        if o.environment_note:
            console.print(Text(f"{one_line(o.recorded.execution_id)}: {one_line(o.environment_note)}"))
        for note in o.notes[1:]:
            console.print(Text(f"{one_line(o.recorded.execution_id)}: note: {one_line(note)}"))
    for note in report.notes:
        say(f"note: {one_line(note)}")
    done = sum(1 for o in report.outcomes if o.status == "reproduced")
    say(f"{done} of {len(report.outcomes)} execution(s) reproduced bit for bit")
